"""The producer API: submit agent steps, wait for their results, manage budgets and dead
letters. A step's handle is a plain Celery ``AsyncResult`` under its result id: the step's
tenant and id (``queues.keys.result_id``), so two tenants' step ids never meet."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import redis
import structlog
from celery import Celery
from celery.result import AsyncResult
from pydantic import ValidationError

from policies.budgets import BudgetState
from policies.tiers import TierTable, load_tier_table
from queues import keys
from queues.bus import CeleryBus
from queues.celery_app import create_app
from queues.messages import Envelope, StepResult
from queues.records import AuditRecord, DeadLetterRecord, ExecutionRecord, LedgerEntry, ShadowRecord
from queues.settings import Settings
from queues.step import AgentStep, check_step_size
from queues.topology import CACHE_INVALIDATE_TASK, DEAD, INGRESS
from workers.stores.archive import archive_for
from workers.stores.audits import RedisAudits
from workers.stores.budget import ScopeLimits, budget_store
from workers.stores.dead_letters import DeadLetter, list_dead, read_archived_dead, remove_dead
from workers.stores.redis_stores import RedisFinalizeGuard, read_ledger

log = structlog.get_logger("tierfleet.fleet")


class InvalidStep(ValueError):
    """A step that cannot be submitted; the message names the field and what is wrong."""


def to_step(obj: AgentStep | Mapping[str, Any]) -> AgentStep:
    """A checked step: its fields, nesting and size within the fleet's limits."""
    try:
        step = obj if isinstance(obj, AgentStep) else AgentStep.model_validate(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in err['loc']) or '(step)'}': {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidStep(f"invalid step: {problems}") from exc
    except RecursionError as exc:  # nested past what any validator can walk
        raise InvalidStep("invalid step: it nests too deep to read") from exc
    try:
        check_step_size(step)
    except ValueError as exc:
        raise InvalidStep(f"invalid step: {exc}") from exc
    return step


class Fleet:
    def __init__(self, settings: Settings, table: TierTable | None = None) -> None:
        self.settings = settings
        self.table = table or load_tier_table(settings.tier_table, settings.price_table)
        self.app: Celery = create_app(settings, self.table.names)
        self.bus = CeleryBus(self.app, lanes_by_priority=self.settings.lanes_by_priority)
        self.redis = redis.Redis.from_url(settings.store_url)
        self.budgets = budget_store(self.redis, settings)

    def result_handle(self, step: AgentStep) -> AsyncResult:
        """The handle on a step's result (``AsyncResult`` under its result id)."""
        return self.app.AsyncResult(keys.result_id(step.tenant, step.step_id))

    def submit(self, step: AgentStep | Mapping[str, Any]) -> AsyncResult:
        checked = to_step(step)
        self._in_flight([checked])
        self.bus.submit(checked)
        return self.result_handle(checked)

    def submit_many(self, steps: Iterable[AgentStep | Mapping[str, Any]]) -> list[AsyncResult]:
        checked = [to_step(s) for s in steps]  # validate all before sending any
        self._in_flight(checked)
        self.bus.submit_many(checked)
        return [self.result_handle(s) for s in checked]

    def _in_flight(self, steps: list[AgentStep]) -> None:
        """Note each step as in flight before it is sent: finalize clears it, so one that
        stays without a result is found by ``lost`` (a message the broker lost). Only loss
        detection depends on it: a store that refuses the write (full) does not stop the
        step, it is sent all the same, and the refusal is logged."""
        if not steps:
            return
        now = time.time()
        pipe = self.redis.pipeline()
        pipe.zadd(keys.INFLIGHT, {keys.result_id(s.tenant, s.step_id): now for s in steps})
        pipe.expire(keys.INFLIGHT, keys.INFLIGHT_TTL_S)
        try:
            pipe.execute()
        except redis.exceptions.RedisError as exc:
            log.warning("in_flight_not_noted", steps=len(steps), error=str(exc))

    def lost(self, older_than_s: float = 600.0) -> list[str]:
        """Result ids of steps submitted more than ``older_than_s`` ago that have no result:
        every stage's retries, redeliveries and waits have had their time, so the message
        was lost (on Redis: a worker killed at the instant of a fetch). Steps answered
        without finalize (a malformed submission) are cleared here."""
        found = []
        stale: Any = self.redis.zrangebyscore(keys.INFLIGHT, "-inf", time.time() - older_than_s)
        for raw in stale:
            result_id = raw.decode()
            if self.app.AsyncResult(result_id).state == "PENDING":
                found.append(result_id)
            else:
                self.redis.zrem(keys.INFLIGHT, raw)
        return found

    def wait(
        self,
        results: list[AsyncResult],
        timeout: float | None = 300.0,
        on_result: Callable[[StepResult], None] | None = None,
        poll_s: float = 0.01,
    ) -> list[StepResult]:
        """Results in submission order; ``on_result`` is called as each one lands.

        Polls the backend with MGET (no pub/sub subscriptions left behind to clean up)."""
        by_id: dict[str, StepResult] = {}
        ids = [r.id for r in results]
        for task_id, meta in self.app.backend.get_many(ids, timeout=timeout, interval=poll_s):
            if meta["status"] != "SUCCESS":
                raise RuntimeError(f"step {task_id} ended {meta['status']}: {meta.get('result')}")
            result = StepResult.model_validate(meta["result"])
            by_id[str(task_id)] = result
            if on_result:
                on_result(result)
        return [by_id[i] for i in ids]

    def invalidate_cache(self, prompt_version: str, timeout: float = 30.0) -> dict[str, int]:
        """Drop a prompt version's cached answers, exact and semantic. The cache worker does
        it (it owns the embedded vector store); raises celery's TimeoutError without one."""
        task_id = f"invalidate:{prompt_version}:{uuid.uuid4().hex}"
        self.app.send_task(
            CACHE_INVALIDATE_TASK, args=[prompt_version], queue=INGRESS, task_id=task_id
        )
        # Polled like wait(): no result subscription is left behind.
        for _, meta in self.app.backend.get_many([task_id], timeout=timeout, interval=0.05):
            if meta["status"] != "SUCCESS":
                raise RuntimeError(f"invalidation ended {meta['status']}: {meta.get('result')}")
            counts: dict[str, int] = meta["result"]
        self.app.backend.forget(task_id)
        return counts

    def set_session_budget(
        self,
        tenant: str,
        session_id: str,
        hard_usd: float | None,
        *,
        soft_usd: float | None = None,
        hard_tokens: int | None = None,
        soft_tokens: int | None = None,
    ) -> None:
        """A session's limits (they replace the defaults for it; None: no such limit)."""
        limits = ScopeLimits(hard_usd, soft_usd, hard_tokens, soft_tokens)
        self.budgets.set_limits("session", tenant, session_id, limits)

    def set_agent_budget(
        self,
        tenant: str,
        agent: str,
        hard_usd: float | None,
        *,
        soft_usd: float | None = None,
        hard_tokens: int | None = None,
        soft_tokens: int | None = None,
    ) -> None:
        """An agent's limits, over all its sessions."""
        limits = ScopeLimits(hard_usd, soft_usd, hard_tokens, soft_tokens)
        self.budgets.set_limits("agent", tenant, agent, limits)

    def set_tenant_budget(
        self,
        tenant: str,
        hard_usd: float | None,
        *,
        soft_usd: float | None = None,
        hard_tokens: int | None = None,
        soft_tokens: int | None = None,
    ) -> None:
        """A tenant's limits, over all its agents and sessions, fleet-wide."""
        limits = ScopeLimits(hard_usd, soft_usd, hard_tokens, soft_tokens)
        self.budgets.set_limits("tenant", tenant, tenant, limits)

    def tenant_budget(self, tenant: str) -> BudgetState:
        return self.budgets.tenant_state(tenant)

    def session_budget(self, tenant: str, session_id: str) -> BudgetState:
        return self.budgets.state(tenant, session_id)

    def agent_budget(self, tenant: str, agent: str) -> BudgetState:
        return self.budgets.agent_state(tenant, agent)

    def record_execution(
        self, tenant: str, workflow: str, session_id: str, *, succeeded: bool, note: str = ""
    ) -> None:
        """Say how a run of a workflow (its session) ended: the report's cost per successful
        execution divides what its steps cost by the runs that succeeded."""
        record = ExecutionRecord(
            ts=time.time(),
            tenant=tenant,
            workflow=workflow,
            session_id=session_id,
            succeeded=succeeded,
            note=note[:500],
        )
        self.redis.xadd(
            keys.EXECUTIONS_STREAM,
            {k: json.dumps(v) for k, v in record.to_record().items()},
            maxlen=keys.EXECUTIONS_KEEP,
            approximate=True,
        )

    def executions(self) -> list[ExecutionRecord]:
        """Every execution outcome producers recorded, oldest first."""
        return [
            ExecutionRecord.model_validate(r)
            for r in read_ledger(self.redis, keys.EXECUTIONS_STREAM)
        ]

    def _read_stream(self, stream: str) -> list[dict[str, Any]]:
        """A capped stream, oldest first: its archived entries, then Redis's."""
        return read_ledger(self.redis, stream, archive_for(self.settings.archive_dir, stream))

    def ledger(self) -> list[LedgerEntry]:
        """Every ledger entry, the archived ones first."""
        return [
            LedgerEntry.model_validate(e) for e in self._read_stream(self.settings.ledger_stream)
        ]

    def calls(self) -> list[dict[str, Any]]:
        """Every provider call as it returned (the bill), oldest first, archived ones too."""
        return self._read_stream(self.settings.calls_stream)

    def shadow_records(self) -> list[ShadowRecord]:
        """Shadow evaluation records (TIERFLEET_SHADOW_FRACTION), oldest first."""
        return [
            ShadowRecord.model_validate(r) for r in self._read_stream(self.settings.shadow_stream)
        ]

    def cache_audits(self) -> tuple[list[AuditRecord], dict[str, dict[str, Any]]]:
        """The semantic cache's judged would-be hits kept (oldest first), and the threshold
        the cache workers last served each scorer at."""
        audits = RedisAudits(self.redis)
        records = [AuditRecord.model_validate(r) for r in read_ledger(self.redis, audits.stream)]
        return records, audits.published()

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        """The letters still on tf.dead (replayable), oldest first."""
        return list(list_dead(self.redis, limit))

    def archived_dead_letters(self) -> list[DeadLetterRecord]:
        """Letters moved off tf.dead to the archive past its cap, oldest first."""
        archive = archive_for(self.settings.archive_dir, DEAD)
        return read_archived_dead(archive) if archive is not None else []

    def replay_dead(self, limit: int = 1000) -> tuple[list[AsyncResult], list[DeadLetter]]:
        """Resubmit dead-lettered steps from scratch; letters without an envelope stay."""
        replayed, kept = [], []
        guard = RedisFinalizeGuard(self.redis, self.settings.result_ttl_s)
        for letter in self.dead_letters(limit):
            if not letter.record.envelope:
                kept.append(letter)
                continue
            step = Envelope.from_wire(letter.record.envelope).step
            if not remove_dead(self.redis, letter):
                continue  # another operator replayed it first
            self.result_handle(step).forget()
            guard.forget(step.tenant, step.step_id)
            replayed.append(self.submit(step))
        return replayed, kept

    def close(self) -> None:
        self.redis.close()
        self.app.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
