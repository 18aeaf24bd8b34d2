"""Queues, lanes and worker groups as data.

Every stage has its own queue; inference has one queue per tier and lane
(``tf.infer.<tier>.<lane>``), so tiers scale and fail separately and a lane is a queue a
worker drains in strict order, not a priority flag (Redis priority emulation is fragile).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from kombu.entity import Exchange, Queue

from queues.messages import Lane

INGRESS = "tf.ingress"
COMPRESS = "tf.compress"
CLASSIFY = "tf.classify"
FINALIZE = "tf.finalize"
DEAD = "tf.dead"  # not a broker queue: a list in the fleet's Redis store, never drained
BATCH = "tf.batch"  # the batch lane's poller (submits and collects provider batch jobs)
NOOP = "tf.bench.noop"

LANE_ORDER: tuple[Lane, ...] = (Lane.interactive, Lane.standard, Lane.batch)


class Stage(StrEnum):
    cache = "cache"
    compress = "compress"
    classify = "classify"
    infer = "infer"
    finalize = "finalize"


TASK_NAMES: dict[Stage, str] = {stage: f"tierfleet.{stage.value}" for stage in Stage}
NOOP_TASK = "tierfleet.noop"
BATCH_POLL_TASK = "tierfleet.batch_poll"
# The cache worker also owns the semantic store: stores and invalidations go to its queue.
CACHE_STORE_TASK = "tierfleet.cache_store"
CACHE_INVALIDATE_TASK = "tierfleet.cache_invalidate"

_STAGE_QUEUES: dict[Stage, str] = {
    Stage.cache: INGRESS,
    Stage.compress: COMPRESS,
    Stage.classify: CLASSIFY,
    Stage.finalize: FINALIZE,
}


def infer_queue(tier: str, lane: Lane | str) -> str:
    return f"tf.infer.{tier}.{Lane(lane).value}"


def queue_for(stage: Stage, tier: str | None = None, lane: Lane | str | None = None) -> str:
    if stage is Stage.infer:
        if tier is None or lane is None:
            raise ValueError("the infer stage is addressed by tier and lane")
        return infer_queue(tier, lane)
    return _STAGE_QUEUES[stage]


def queue_names(tiers: Sequence[str]) -> list[str]:
    names = [INGRESS, COMPRESS, CLASSIFY]
    names += [infer_queue(tier, lane) for tier in tiers for lane in LANE_ORDER]
    return [*names, FINALIZE, BATCH, NOOP]


def declare_queues(tiers: Sequence[str]) -> list[Queue]:
    exchange = Exchange("tierfleet", type="direct")
    return [Queue(name, exchange, routing_key=name) for name in queue_names(tiers)]


@dataclass(frozen=True)
class WorkerGroup:
    """One kind of worker process: the queues it drains, in order, and how it fetches."""

    name: str
    queues: tuple[str, ...]
    prefetch_multiplier: int = 1

    def celery_args(self, app_module: str = "workers.app") -> list[str]:
        return [
            "celery",
            "-A",
            app_module,
            "worker",
            "-Q",
            ",".join(self.queues),
            "-n",
            f"{self.name}@%h",
            "--prefetch-multiplier",
            str(self.prefetch_multiplier),
        ]


def worker_groups(tiers: Sequence[str], flush_every: int) -> list[WorkerGroup]:
    """The fleet's worker groups. Inference workers prefetch a whole micro-batch."""
    groups = [
        WorkerGroup("cache", (INGRESS,)),
        WorkerGroup("compress", (COMPRESS,)),
        WorkerGroup("classify", (CLASSIFY,)),
    ]
    groups += [
        WorkerGroup(
            f"infer-{tier}",
            tuple(infer_queue(tier, lane) for lane in LANE_ORDER),
            prefetch_multiplier=max(1, flush_every),
        )
        for tier in tiers
    ]
    groups.append(WorkerGroup("finalize", (FINALIZE,)))
    groups.append(WorkerGroup("batch", (BATCH,)))
    return groups
