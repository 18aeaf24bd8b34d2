"""A runtime of in-memory doubles for calling one stage's handler directly, and the steps
and envelopes to call it with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.tables import DEFAULT_TIER_TABLE
from policies.tiers import load_tier_table
from queues.messages import Envelope, Outcome
from queues.seal import Sealer
from queues.settings import Settings
from queues.step import AgentStep
from queues.topology import TASK_NAMES, Stage
from workers.ml.tokenizer import BpeCounter
from workers.ports import Completion, Provider
from workers.runtime import Runtime
from workers.semantic import SemanticLayer
from workers.testing.providers import FunctionProvider
from workers.testing.stores import (
    CountingDeliveries,
    DeadSink,
    DictCache,
    ListAudits,
    ListLedger,
    MemoryBatchJobs,
    MemoryBudgets,
    MemorySessionSteps,
    MemoryStores,
    MemorySummaries,
    ResultSink,
    SetGuard,
)

TEST_SEALER = Sealer(b"tierfleet test envelope key")


@dataclass
class RecordingBus:
    sent: list[tuple[Stage, Envelope, float | None]] = field(default_factory=list)
    finalized: list[tuple[Envelope, Outcome]] = field(default_factory=list)
    remembered: list[tuple[Envelope, Outcome]] = field(default_factory=list)
    countdowns: list[tuple[str, float | None]] = field(default_factory=list)  # finalize, remember

    def send(self, stage: Stage, env: Envelope, *, countdown: float | None = None) -> None:
        self.sent.append((stage, env, countdown))

    def finalize(self, env: Envelope, outcome: Outcome, *, countdown: float | None = None) -> None:
        self.finalized.append((env, outcome))
        self.countdowns.append(("finalize", countdown))

    def remember(self, env: Envelope, outcome: Outcome, *, countdown: float | None = None) -> None:
        self.remembered.append((env, outcome))
        self.countdowns.append(("remember", countdown))


def make_runtime(
    provider: Provider | None = None,
    *,
    budgets: MemoryBudgets | None = None,
    tier_table: Path = DEFAULT_TIER_TABLE,
    semantic: SemanticLayer | None = None,
    **settings: Any,
) -> tuple[Runtime, RecordingBus, MemoryStores]:
    bus = RecordingBus()
    stores = MemoryStores()
    prov: Provider = provider or FunctionProvider(lambda r: Completion("ok", 10, 2, confidence=0.9))
    rt = Runtime(
        settings=Settings(tier_table=tier_table, **settings),
        table=load_tier_table(tier_table),
        counter=BpeCounter(),
        bus=bus,
        budgets=budgets or MemoryBudgets(),
        cache=DictCache(stores.cache),
        ledger=ListLedger(stores.ledger),
        finalized=SetGuard(stores.finalized),
        dead=DeadSink(stores.dead),
        results=ResultSink(stores.results),
        provider_factory=lambda model: prov,
        batch_jobs=MemoryBatchJobs(),
        shadow=ListLedger(stores.shadow),
        calls=ListLedger(stores.calls),
        summaries=MemorySummaries(stores),
        session_steps=MemorySessionSteps(),
        sealer=TEST_SEALER,
        deliveries=CountingDeliveries(),
        audits=ListAudits(stores.audits),
        clock=lambda: 2_000_000_000.0,
        semantic_factory=lambda: (semantic, "no semantic layer in this test"),
    )
    return rt, bus, stores


def step(**overrides: Any) -> AgentStep:
    fields: dict[str, Any] = {
        "tenant": "acme",
        "agent": "support",
        "session_id": "s1",
        "messages": [
            {"role": "system", "content": "You are a careful assistant."},
            {"role": "user", "content": "What is the baggage allowance?"},
        ],
    }
    fields.update(overrides)
    return AgentStep.model_validate(fields)


def infer_hops(*envs: Envelope) -> list[list[str]]:
    """Envelopes as the inference task receives them: each sealed, as a stage sends it."""
    task = TASK_NAMES[Stage.infer]
    return [[e.to_wire(), TEST_SEALER.sign(task, e.to_wire())] for e in envs]


def envelope(**overrides: Any) -> Envelope:
    env_fields = {
        k: overrides.pop(k) for k in ("tier", "attempt", "retries", "cache_key") if k in overrides
    }
    return Envelope(step=step(**overrides), submitted_at=1_999_999_999.0, **env_fields)
