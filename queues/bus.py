"""Send a step to the next stage by name: workers never import each other.

Producers submit a bare ``Submission`` (a step, unsigned). Every later hop carries the
envelope and, as its last argument, the seal of ``queues.seal``: what a stage receives
from another stage it can trust; what it receives unsealed is only ever a submission."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from celery import Celery

from queues import keys
from queues.messages import Envelope, Outcome, Submission
from queues.seal import Sealer
from queues.step import AgentStep, Lane
from queues.topology import (
    CACHE_STORE_TASK,
    LANE_PRIORITY,
    TASK_NAMES,
    Stage,
    queue_for,
)

# Every message carries when it was sent: a worker group's /metrics reads the oldest
# waiting message's header for the age of its queue (workers/metrics_export.py).
SENT_AT = "tf_sent_at"


def stamped() -> dict[str, dict[str, float]]:
    return {"headers": {SENT_AT: time.time()}}


def hop_id(env: Envelope, stage: Stage) -> str:
    """A task id per hop, unique and stable across redeliveries of the same hop."""
    step = env.step
    return keys.hop_id(step.tenant, step.step_id, stage.value, len(env.decisions), env.retries)


def describe(step: AgentStep) -> str:
    """What Celery logs and monitors show for a message instead of its arguments: the step's
    names, never its prompt or anything secret."""
    return f"<step {keys.step_ref(step.tenant, step.step_id)} {step.task_kind} {step.lane.value}>"


class CeleryBus:
    """The real bus: one Celery message per hop; finalize runs under the step's result id.

    Hops are sent with ``ignore_result=True``: the flag travels in the message and overrides
    the task's own setting, and without it every hop would store a result and the sender
    would subscribe to its result channel. A bus without a sealer can only submit."""

    def __init__(
        self, app: Celery, sealer: Sealer | None = None, *, lanes_by_priority: bool = False
    ) -> None:
        self.app = app
        self.sealer = sealer
        self.lanes_by_priority = lanes_by_priority  # queues/topology.py

    def _priority(self, lane: Lane) -> dict[str, Any]:
        """On a broker that orders by priority, every message of a step carries its lane's,
        at every stage: an interactive step overtakes a backlog at finalize too."""
        return {"priority": LANE_PRIORITY[lane]} if self.lanes_by_priority else {}

    def _seal(self, task: str, *parts: str) -> list[str]:
        if self.sealer is None:
            raise RuntimeError("this bus holds no envelope key: it can only submit steps")
        return [*parts, self.sealer.sign(task, *parts)]

    def _submission(self, step: AgentStep, **options: Any) -> None:
        self.app.send_task(
            TASK_NAMES[Stage.cache],
            args=[Submission(step=step).model_dump_json()],
            queue=queue_for(Stage.cache, lane=step.lane, by_priority=self.lanes_by_priority),
            task_id=keys.hop_id(step.tenant, step.step_id, Stage.cache.value, 0, 0),
            ignore_result=True,
            argsrepr=describe(step),
            kwargsrepr="{}",
            **stamped(),
            **self._priority(step.lane),
            **options,
        )

    def submit(self, step: AgentStep) -> None:
        self._submission(step)

    def submit_many(self, steps: Iterable[AgentStep]) -> int:
        """Publish many submissions over one producer connection."""
        sent = 0
        with self.app.producer_or_acquire() as producer:
            for step in steps:
                self._submission(step, producer=producer)
                sent += 1
        return sent

    def _hop(self, stage: Stage, env: Envelope, **options: Any) -> None:
        if stage is Stage.finalize:
            raise ValueError("use finalize() to end a step")
        task = TASK_NAMES[stage]
        lane = env.step.lane
        self.app.send_task(
            task,
            args=self._seal(task, env.to_wire()),
            queue=queue_for(stage, env.tier, lane, self.lanes_by_priority),
            task_id=hop_id(env, stage),
            ignore_result=True,
            argsrepr=describe(env.step),
            kwargsrepr="{}",
            **stamped(),
            **self._priority(lane),
            **options,
        )

    def send(self, stage: Stage, env: Envelope, *, countdown: float | None = None) -> None:
        self._hop(stage, env, countdown=countdown)

    def send_many(self, stage: Stage, envelopes: Iterable[Envelope]) -> int:
        """Publish many envelopes over one producer connection."""
        sent = 0
        with self.app.producer_or_acquire() as producer:
            for env in envelopes:
                self._hop(stage, env, producer=producer)
                sent += 1
        return sent

    def finalize(self, env: Envelope, outcome: Outcome, *, countdown: float | None = None) -> None:
        # The task id is the step's result id: the finalize task's return value *is* the
        # step's result, so AsyncResult(result_id) resolves and Flower lists the step.
        task = TASK_NAMES[Stage.finalize]
        self.app.send_task(
            task,
            args=self._seal(task, env.to_wire(), outcome.model_dump_json()),
            queue=queue_for(Stage.finalize, lane=env.step.lane, by_priority=self.lanes_by_priority),
            task_id=keys.result_id(env.step.tenant, env.step.step_id),
            ignore_result=False,
            argsrepr=describe(env.step),
            kwargsrepr="{}",
            **stamped(),
            countdown=countdown,
            **self._priority(env.step.lane),
        )

    def remember(self, env: Envelope, outcome: Outcome, *, countdown: float | None = None) -> None:
        """Ask the cache worker to store an answered step in the semantic cache."""
        self.app.send_task(
            CACHE_STORE_TASK,
            args=self._seal(CACHE_STORE_TASK, env.to_wire(), outcome.model_dump_json()),
            queue=queue_for(Stage.cache, lane=env.step.lane, by_priority=self.lanes_by_priority),
            task_id=f"{keys.step_ref(env.step.tenant, env.step.step_id)}:cache_store",
            ignore_result=True,
            argsrepr=describe(env.step),
            kwargsrepr="{}",
            **stamped(),
            countdown=countdown,
            **self._priority(env.step.lane),
        )
