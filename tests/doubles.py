"""Test doubles for the worker ports: plain in-memory classes and functions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from policies.budgets import BudgetState
from policies.tiers import load_tier_table
from queues.messages import AgentStep, Envelope, Outcome, StepResult
from queues.settings import DEFAULT_TIER_TABLE, Settings
from queues.topology import Stage
from workers.ports import BatchJob, BatchPoll, Completion, CompletionRequest, ParkedStep
from workers.runtime import Runtime
from workers.tokenizer import BpeCounter


@dataclass
class RecordingBus:
    sent: list[tuple[Stage, Envelope, float | None]] = field(default_factory=list)
    finalized: list[tuple[Envelope, Outcome]] = field(default_factory=list)

    def send(self, stage: Stage, env: Envelope, *, countdown: float | None = None) -> None:
        self.sent.append((stage, env, countdown))

    def finalize(self, env: Envelope, outcome: Outcome) -> None:
        self.finalized.append((env, outcome))


@dataclass
class MemoryBudgets:
    """The budget rules of the Lua script, in memory (the real one is tested on Redis)."""

    limit_nano: int | None = None
    spent: int = 0
    held: dict[str, int] = field(default_factory=dict)

    def reserve(self, env: Envelope, reservation: str, amount_nano: int) -> BudgetState | None:
        state = BudgetState(self.limit_nano, self.spent, sum(self.held.values()))
        if reservation in self.held:
            return state
        if not state.admits(amount_nano):
            return None
        self.held[reservation] = amount_nano
        return state

    def settle(self, env: Envelope, reservation: str, actual_nano: int) -> None:
        if self.held.pop(reservation, None) is not None:
            self.spent += actual_nano

    def release_step(self, env: Envelope) -> int:
        mine = [k for k in self.held if k.startswith(env.step.step_id + ":")]
        return sum(self.held.pop(k) for k in mine)

    def state(self, tenant: str, session_id: str) -> BudgetState:
        return BudgetState(self.limit_nano, self.spent, sum(self.held.values()))


@dataclass
class MemoryStores:
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    finalized: set[str] = field(default_factory=set)
    dead: list[dict[str, Any]] = field(default_factory=list)
    results: list[StepResult] = field(default_factory=list)
    shadow: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MemoryBatchJobs:
    """The batch lane's store in memory (the Redis one is tested against Redis)."""

    pending_steps: dict[str, dict[str, ParkedStep]] = field(default_factory=dict)
    since: dict[str, float] = field(default_factory=dict)
    job_items: dict[str, dict[str, ParkedStep]] = field(default_factory=dict)
    metas: dict[str, BatchJob] = field(default_factory=dict)
    parked_once: set[str] = field(default_factory=set)

    def park(self, item: ParkedStep, now: float) -> int | None:
        if item.reservation in self.parked_once:
            return None
        self.parked_once.add(item.reservation)
        self.pending_steps.setdefault(item.model, {})[item.reservation] = item
        self.since.setdefault(item.model, now)
        return len(self.pending_steps[item.model])

    def due(self, older_than: float) -> list[str]:
        return [m for m, t in self.since.items() if t <= older_than]

    def pending(self, model: str) -> int:
        return len(self.pending_steps.get(model, {}))

    def take(self, model: str, provider: str, limit: int, now: float) -> BatchJob | None:
        waiting = self.pending_steps.get(model, {})
        chosen = list(waiting)[:limit]
        if not chosen:
            self.since.pop(model, None)
            return None
        job = BatchJob(f"job{len(self.metas)}", model, provider, "submitting", now)
        self.job_items[job.job_id] = {f"r{i}": waiting.pop(k) for i, k in enumerate(chosen)}
        self.metas[job.job_id] = job
        if waiting:
            self.since[model] = now
        else:
            self.since.pop(model, None)
        return job

    def items(self, job_id: str) -> dict[str, ParkedStep]:
        return dict(self.job_items.get(job_id, {}))

    def submitted(self, job: BatchJob, provider_batch_id: str, now: float) -> None:
        self.metas[job.job_id] = replace(
            job, state="submitted", provider_batch_id=provider_batch_id, submitted_at=now
        )

    def jobs(self) -> list[BatchJob]:
        return list(self.metas.values())

    def done(self, job_id: str, custom_id: str) -> None:
        self.job_items.get(job_id, {}).pop(custom_id, None)
        if not self.job_items.get(job_id):
            self.job_items.pop(job_id, None)
            self.metas.pop(job_id, None)

    @contextmanager
    def exclusive(self, ttl_s: float) -> Iterator[bool]:
        yield True


class DictCache:
    def __init__(self, data: dict[str, dict[str, Any]]) -> None:
        self.data = data

    def get(self, key: str) -> dict[str, Any] | None:
        return self.data.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.data[key] = entry


class ListLedger:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def append(self, entry: dict[str, Any]) -> None:
        self.rows.append(entry)


class SetGuard:
    def __init__(self, done: set[str]) -> None:
        self._done = done

    def done(self, step_id: str) -> bool:
        return step_id in self._done

    def mark(self, step_id: str) -> None:
        self._done.add(step_id)


class DeadSink:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def put(self, record: dict[str, Any]) -> None:
        self.rows.append(record)


class ResultSink:
    def __init__(self, rows: list[StepResult]) -> None:
        self.rows = rows

    def store(self, result: StepResult) -> None:
        self.rows.append(result)


Answerer = Callable[[CompletionRequest], Completion]


class FunctionProvider:
    """A provider made of a plain function, as httpx.MockTransport is made of a handler."""

    def __init__(self, answer: Answerer, name: str = "simulated") -> None:
        self.answer = answer
        self.name = name
        self.calls: list[list[CompletionRequest]] = []

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion]:
        self.calls.append(list(requests))
        return [self.answer(r) for r in requests]


class BatchFunctionProvider(FunctionProvider):
    """A provider with a batch API made of plain functions: jobs end when ``ended`` is set;
    ``answer`` may return an exception for an item that failed."""

    def __init__(self, answer: Callable[[CompletionRequest], Completion | Exception]) -> None:
        super().__init__(lambda r: Completion("live", 1, 1), name="openai")
        self.batch_answer = answer
        self.jobs: dict[str, list[tuple[str, CompletionRequest]]] = {}
        self.ended = False
        self.job_error: str | None = None

    def submit_batch(self, job_id: str, requests: Sequence[tuple[str, CompletionRequest]]) -> str:
        self.jobs[f"batch_{job_id}"] = list(requests)
        return f"batch_{job_id}"

    def poll_batch(self, provider_batch_id: str) -> BatchPoll:
        if not self.ended:
            return BatchPoll(ended=False)
        if self.job_error:
            return BatchPoll(ended=True, error=self.job_error)
        return BatchPoll(
            ended=True,
            results={cid: self.batch_answer(r) for cid, r in self.jobs[provider_batch_id]},
        )


def make_runtime(
    provider: FunctionProvider | None = None,
    *,
    budgets: MemoryBudgets | None = None,
    tier_table: Path = DEFAULT_TIER_TABLE,
    **settings: Any,
) -> tuple[Runtime, RecordingBus, MemoryStores]:
    bus = RecordingBus()
    stores = MemoryStores()
    prov = provider or FunctionProvider(lambda r: Completion("ok", 10, 2, confidence=0.9))
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
        provider_factory=lambda name: prov,
        batch_jobs=MemoryBatchJobs(),
        shadow=ListLedger(stores.shadow),
        clock=lambda: 2_000_000_000.0,
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


def envelope(**overrides: Any) -> Envelope:
    env_fields = {
        k: overrides.pop(k) for k in ("tier", "attempt", "retries", "cache_key") if k in overrides
    }
    return Envelope(step=step(**overrides), submitted_at=1_999_999_999.0, **env_fields)
