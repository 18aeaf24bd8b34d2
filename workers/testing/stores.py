"""In-memory stores with the same contracts as the Redis ones (the contract tests run
both): budgets, caches, ledgers, the finalize guard, dead letters, results, summaries,
batch jobs and delivery counts."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from policies.budgets import BudgetState, Settlement
from queues import keys
from queues.messages import Envelope, StepResult
from workers.ports import BatchJob, ParkedStep


@dataclass
class MemoryBudgets:
    """The budget rules of the Lua script for one scope, in memory (the real one, with both
    scopes, is tested on Redis)."""

    limit_nano: int | None = None
    spent: int = 0
    held: dict[str, int] = field(default_factory=dict)
    limit_tokens: int | None = None
    soft_nano: int | None = None
    spent_tokens: int = 0
    held_tokens: dict[str, int] = field(default_factory=dict)

    def _state(self) -> BudgetState:
        return BudgetState(
            self.limit_nano,
            self.spent,
            sum(self.held.values()),
            self.limit_tokens,
            self.spent_tokens,
            sum(self.held_tokens.values()),
            soft_nano=self.soft_nano,
        )

    def reserve(
        self,
        env: Envelope,
        reservation: str,
        amount_nano: int,
        tokens: int = 0,
        allowance: tuple[int, int] = (0, 0),
    ) -> str | None:
        if reservation in self.held:
            return None
        if not self._state().admits(amount_nano - allowance[0], tokens - allowance[1]):
            return "session"
        self.held[reservation] = amount_nano
        self.held_tokens[reservation] = tokens
        return None

    def settle(
        self, env: Envelope, reservation: str, actual_nano: int, tokens: int = 0
    ) -> Settlement:
        held = self.held.pop(reservation, None)
        if held is None:
            return Settlement(False, 0, actual_nano)
        self.held_tokens.pop(reservation, None)
        self.spent += actual_nano
        self.spent_tokens += tokens
        return Settlement(True, held, actual_nano)

    def release_step(self, env: Envelope) -> int:
        prefix = keys.reservation_prefix(env.step.tenant, env.step.step_id)
        mine = [k for k in self.held if k.startswith(prefix)]
        for k in mine:
            self.held_tokens.pop(k, None)
        return sum(self.held.pop(k) for k in mine)

    def state(self, tenant: str, session_id: str) -> BudgetState:
        return self._state()

    def states(self, env: Envelope) -> list[BudgetState]:
        return [self._state()]


@dataclass
class MemoryStores:
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)
    finalized: set[str] = field(default_factory=set)
    dead: list[dict[str, Any]] = field(default_factory=list)
    results: list[StepResult] = field(default_factory=list)
    shadow: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    summaries: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    claims: set[tuple[str, str, str]] = field(default_factory=set)
    audits: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MemorySessionSteps:
    """The step cap's counts in memory (the Redis one is tested against Redis)."""

    seen: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def count(self, tenant: str, session: str, step_id: str) -> int:
        steps = self.seen.setdefault((tenant, session), set())
        steps.add(step_id)
        return len(steps)


@dataclass
class MemorySummaries:
    """The summary store in memory (the Redis one is tested against Redis)."""

    stores: MemoryStores
    _lock: threading.Lock = field(default_factory=threading.Lock)  # claims race in threads

    def get(self, tenant: str, session: str) -> dict[str, str]:
        return dict(self.stores.summaries.get((tenant, session), {}))

    def claim(self, tenant: str, session: str, key: str) -> bool:
        with self._lock:
            if (tenant, session, key) in self.stores.claims:
                return False
            self.stores.claims.add((tenant, session, key))
            return True

    def put(self, tenant: str, session: str, key: str, text: str) -> None:
        self.stores.summaries.setdefault((tenant, session), {})[key] = text


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

    def drop_prompt_version(self, prompt_version: str) -> int:
        mine = [k for k in self.data if f":{keys.part(prompt_version)}:" in k]
        for key in mine:
            del self.data[key]
        return len(mine)


class ListLedger:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def append(self, entry: dict[str, Any]) -> None:
        self.rows.append(entry)

    def append_many(self, entries: Sequence[dict[str, Any]]) -> None:
        self.rows.extend(entries)


class ListAudits(ListLedger):
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        super().__init__(rows)
        self.bounds: dict[str, dict[str, Any]] = {}

    def recent(self, count: int) -> list[dict[str, Any]]:
        return self.rows[::-1][:count]

    def publish(self, scorer: str, state: dict[str, Any]) -> None:
        self.bounds[scorer] = state

    def published(self) -> dict[str, dict[str, Any]]:
        return dict(self.bounds)


class SetGuard:
    def __init__(self, done: set[str]) -> None:
        self._done = done
        self.claimed: set[str] = set()  # claims another finalize holds

    def done(self, tenant: str, step_id: str) -> bool:
        return keys.step_ref(tenant, step_id) in self._done

    def claim(self, tenant: str, step_id: str) -> bool:
        return keys.step_ref(tenant, step_id) not in self.claimed

    def release(self, tenant: str, step_id: str) -> None:
        self.claimed.discard(keys.step_ref(tenant, step_id))

    def mark(self, tenant: str, step_id: str) -> None:
        self._done.add(keys.step_ref(tenant, step_id))


class CountingDeliveries:
    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def count(self, message_id: str, redelivered: bool) -> int:
        if not redelivered:
            return 1
        self.seen[message_id] = self.seen.get(message_id, 1) + 1
        return self.seen[message_id]


class DeadSink:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def put(self, record: dict[str, Any]) -> None:
        self.rows.append(record)


class ResultSink:
    def __init__(self, rows: list[StepResult]) -> None:
        self.rows = rows

    def store_if_absent(self, result: StepResult) -> bool:
        if any((r.tenant, r.step_id) == (result.tenant, result.step_id) for r in self.rows):
            return False
        self.rows.append(result)
        return True
