"""The fleet in one process, for testing producer code and tier tables without Redis or
worker processes (the counterpart of dramatiq's StubBroker).

``InProcessFleet`` has the stages' real code between its in-memory doubles: every hop is
sealed and opened as on the wire, and runs through the same entry points as the Celery
tasks (``run_stage``, ``handle_batch``, ``finalize_raw``, ``store_raw``), synchronously and
in order. Countdowns are recorded, not waited for. What it leaves out is the broker: no
prefetch, no redelivery, one step at a time per hop.

    from workers.testing import FunctionProvider, InProcessFleet
    from workers.ports import Completion

    provider = FunctionProvider(lambda request: Completion("B", tokens_in=50, tokens_out=1))
    fleet = InProcessFleet(provider)
    [result] = fleet.run([{"tenant": "t", "agent": "a", "session_id": "s",
                           "task_kind": "multiple_choice",
                           "messages": [{"role": "user", "content": "A or B?"}]}])
    assert result.status.value == "ok" and result.tier == "cheap"
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import Ignore

from queues import keys
from queues.messages import Envelope, Outcome, StepResult, Submission
from queues.records import DeadLetterRecord, LedgerEntry, ShadowRecord
from queues.step import AgentStep, check_step_size
from queues.topology import CACHE_STORE_TASK, TASK_NAMES, Stage
from workers import batch_lane, cache, classify, compress, finalize
from workers.infer import handle_batch
from workers.opening import open_envelope, open_ingress
from workers.stage import Handler, run_stage
from workers.testing.runtime import TEST_SEALER, make_runtime

PLAIN_STAGES: dict[Stage, Handler] = {
    Stage.cache: cache.handle,
    Stage.compress: compress.handle,
    Stage.classify: classify.handle,
}

Hop = tuple[str, tuple[str, ...], float | None]  # (task name, its arguments, countdown)


@dataclass
class InProcessBus:
    """A bus that queues sealed hops in memory; ``InProcessFleet`` runs them."""

    hops: deque[Hop] = field(default_factory=deque)
    countdowns: list[float] = field(default_factory=list)

    def _put(self, task: str, parts: tuple[str, ...], countdown: float | None) -> None:
        if countdown:
            self.countdowns.append(countdown)
        self.hops.append((task, (*parts, TEST_SEALER.sign(task, *parts)), countdown))

    def submit(self, step: AgentStep) -> None:
        self.hops.append((TASK_NAMES[Stage.cache], (Submission(step=step).model_dump_json(),), 0))

    def send(self, stage: Stage, env: Envelope, *, countdown: float | None = None) -> None:
        self._put(TASK_NAMES[stage], (env.to_wire(),), countdown)

    def finalize(self, env: Envelope, outcome: Outcome, *, countdown: float | None = None) -> None:
        self._put(TASK_NAMES[Stage.finalize], (env.to_wire(), outcome.model_dump_json()), countdown)

    def remember(self, env: Envelope, outcome: Outcome, *, countdown: float | None = None) -> None:
        self._put(CACHE_STORE_TASK, (env.to_wire(), outcome.model_dump_json()), countdown)


class InProcessFleet:
    """Submit steps, run every hop they make to the end, read results, ledger and bill.

    ``provider`` answers every model (a ``FunctionProvider``, or any Provider); settings
    are ``Settings`` fields (``tier_table=...``, ``session_budget_usd=...``)."""

    def __init__(self, provider: Any = None, *, max_hops: int = 10_000, **settings: Any) -> None:
        self.runtime, _, self.stores = make_runtime(provider, **settings)
        self.bus = InProcessBus()
        self.runtime.bus = self.bus
        self.max_hops = max_hops

    def submit(self, step: AgentStep | Mapping[str, Any]) -> str:
        """Check a step as the producer API does and queue it; its step id."""
        checked = _as_step(step)
        check_step_size(checked)
        self.bus.submit(checked)
        return checked.step_id

    def run(self, steps: Iterable[AgentStep | Mapping[str, Any]]) -> list[StepResult]:
        """Submit ``steps``, run the fleet until nothing is left, and return their results
        in order (batch-lane steps whose provider has a batch API wait for ``poll``)."""
        ids = [(s.tenant, self.submit(s)) for s in map(_as_step, steps)]
        self.drain()
        found = {(r.tenant, r.step_id): r for r in self.stores.results}
        return [found[i] for i in ids if i in found]

    def poll(self) -> None:
        """One round of the batch lane's poller (submits parked steps, collects jobs)."""
        batch_lane.poll(self.runtime)
        self.drain()

    def drain(self) -> int:
        """Run queued hops (and the hops they make) until none is left; how many ran."""
        ran = 0
        while self.bus.hops:
            if ran >= self.max_hops:
                raise RuntimeError(f"more than {self.max_hops} hops: a step that never ends?")
            task, args, _ = self.bus.hops.popleft()
            self._run(task, args)
            ran += 1
        return ran

    def _run(self, task: str, args: tuple[str, ...]) -> None:
        rt = self.runtime
        stage = next((s for s, name in TASK_NAMES.items() if name == task), None)
        if task == CACHE_STORE_TASK:
            cache.store_raw(args, rt)
        elif stage is Stage.infer:
            handle_batch([list(args)], rt)
        elif stage is Stage.finalize:
            env = Envelope.from_wire(args[0])
            task_id = keys.result_id(env.step.tenant, env.step.step_id)
            try:
                result = finalize.finalize_raw(args, task_id, rt)
            except Ignore:  # a retry is queued, or another finalize holds the step
                return
            rt.results.store_if_absent(StepResult.model_validate(result))
        elif stage is not None:
            opener = open_ingress if stage is Stage.cache else open_envelope
            seal = args[1] if len(args) > 1 else None
            run_stage(rt, stage.value, args[0], PLAIN_STAGES[stage], seal=seal, opener=opener)

    @property
    def ledger(self) -> list[LedgerEntry]:
        """One entry per finished step, as ``Fleet.ledger`` reads them."""
        return [LedgerEntry.model_validate(e) for e in self.stores.ledger]

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The bill: every provider call's start, tries and answer (``Fleet.calls``)."""
        return self.stores.calls

    @property
    def dead(self) -> list[DeadLetterRecord]:
        return [DeadLetterRecord.model_validate(d) for d in self.stores.dead]

    @property
    def shadow(self) -> list[ShadowRecord]:
        return [ShadowRecord.model_validate(r) for r in self.stores.shadow]


def _as_step(step: AgentStep | Mapping[str, Any]) -> AgentStep:
    return step if isinstance(step, AgentStep) else AgentStep.model_validate(step)
