"""Test doubles for the worker ports: plain in-memory classes and functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.budgets import BudgetState
from policies.tiers import load_tier_table
from queues.messages import AgentStep, Envelope, Outcome, StepResult
from queues.settings import DEFAULT_TIER_TABLE, Settings
from queues.topology import Stage
from workers.ports import Completion, CompletionRequest
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
