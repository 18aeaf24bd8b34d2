"""Send an envelope to the next stage by name: workers never import each other."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import Celery

from queues.messages import Envelope, Outcome
from queues.topology import CACHE_STORE_TASK, FINALIZE, INGRESS, TASK_NAMES, Stage, queue_for


def hop_id(env: Envelope, stage: Stage) -> str:
    """A task id per hop, unique and stable across redeliveries of the same hop."""
    return f"{env.step.step_id}:{stage.value}:{len(env.decisions)}:{env.retries}"


class CeleryBus:
    """The real bus: one Celery message per hop; finalize runs under the step's own id.

    Hops are sent with ``ignore_result=True``: the flag travels in the message and overrides
    the task's own setting, and without it every hop would store a result and the sender
    would subscribe to its result channel."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def _hop(self, stage: Stage, env: Envelope, **options: Any) -> None:
        if stage is Stage.finalize:
            raise ValueError("use finalize() to end a step")
        self.app.send_task(
            TASK_NAMES[stage],
            args=[env.to_wire()],
            queue=queue_for(stage, env.tier, env.step.lane),
            task_id=hop_id(env, stage),
            ignore_result=True,
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

    def finalize(self, env: Envelope, outcome: Outcome) -> None:
        # The task id is the step id: the finalize task's return value *is* the step's result,
        # so AsyncResult(step_id) resolves and Flower lists the step as a task.
        self.app.send_task(
            TASK_NAMES[Stage.finalize],
            args=[env.to_wire(), outcome.model_dump_json()],
            queue=FINALIZE,
            task_id=env.step.step_id,
            ignore_result=False,
        )

    def remember(self, env: Envelope, outcome: Outcome) -> None:
        """Ask the cache worker to store an answered step in the semantic cache."""
        self.app.send_task(
            CACHE_STORE_TASK,
            args=[env.to_wire(), outcome.model_dump_json()],
            queue=INGRESS,
            task_id=f"{env.step.step_id}:cache_store",
            ignore_result=True,
        )
