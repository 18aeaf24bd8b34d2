"""The all-frontier baseline: the same steps, uncompressed and uncached, each sent once to the
top tier's model through the same provider adapter. Savings are always shown beside it.

Its quality is judged as the fleet's is: an answer is acceptable when it is right (the
provider's label) and passes the same checks the cascade applies (finished, not empty,
its schema or its task kind's format), never on a looser rule than the fleet's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.cascade import judge
from policies.tiers import TierTable
from queues.settings import Settings
from queues.step import AgentStep
from workers.ml.tokenizer import BpeCounter
from workers.ports import Completion, CompletionRequest
from workers.providers import build_provider


@dataclass(frozen=True)
class Baseline:
    model: str
    steps: int
    cost_usd: float
    correct: int
    known: int  # steps whose correctness the provider knows

    @property
    def quality(self) -> float | None:
        return self.correct / self.known if self.known else None


def passes_checks(step: AgentStep, answer: Completion) -> bool:
    """The cascade's own checks, confidence aside (the top tier is not held to one)."""
    return judge(
        answer.text,
        task_kind=step.task_kind,
        schema=step.response_schema,
        confidence=None,
        min_confidence=0.0,
        finish=answer.finish,
    ).accepted


def frontier_baseline(
    steps: Sequence[AgentStep], table: TierTable, settings: Settings, chunk: int = 64
) -> Baseline:
    model = table.model_of(table.top.name)
    counter = BpeCounter(settings.tokenizer_encoding)
    quick = settings.model_copy(update={"simulated_latency_ms": 0})
    provider = build_provider(model.provider, quick, counter, model=model)
    cost, correct, known = 0.0, 0, 0
    for start in range(0, len(steps), chunk):
        batch = steps[start : start + chunk]
        requests = [CompletionRequest.for_step(s, model, s.messages) for s in batch]
        for step, answer in zip(batch, provider.complete(requests), strict=True):
            if isinstance(answer, Exception):
                raise answer
            billed = answer.billed_usd
            cost += (
                billed
                if billed is not None
                else model.cost(
                    answer.tokens_in,
                    answer.tokens_out,
                    answer.tokens_cached,
                    answer.tokens_cache_write,
                )
            )
            if answer.correct is not None:
                known += 1
                correct += int(answer.correct and passes_checks(step, answer))
    return Baseline(model.name, len(steps), cost, correct, known)
