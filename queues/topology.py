"""Queues, lanes and worker groups as data.

Every stage has its own queue, and inference one per tier, so tiers scale and fail
separately. Lanes (interactive before standard before batch) depend on the broker:

- Redis: one queue per stage and lane, which a worker polls in the order of its ``-Q``
  (kombu's ``queue_order_strategy``); Redis's priority emulation is fragile, separate
  queues are not. Inference: ``tf.infer.<tier>.<lane>``. The other stages keep their own
  name for the standard lane (what a producer of an older version sends still arrives)
  beside ``<stage>.interactive`` and ``<stage>.batch``. A message that waits past its
  lane's bound in a lower lane is moved to the front of the lane above
  (``workers/lane_guard.py``): strict order, but no lane starves.
- RabbitMQ serves a worker's queues round-robin, so there the order of ``-Q`` means nothing:
  one queue per tier (``tf.infer.<tier>``), the lane the message's priority (interactive 9,
  standard 5, batch 1), which the broker honours on delivery. There every stage's queue
  has ``x-max-priority`` 9 and every message of a step its lane's priority, so an
  interactive step also overtakes a backlog at ingress, compression or finalize.
``by_priority`` says which (``Settings.lanes_by_priority``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from kombu.entity import Exchange, Queue

from queues.step import Lane

INGRESS = "tf.ingress"
COMPRESS = "tf.compress"
CLASSIFY = "tf.classify"
FINALIZE = "tf.finalize"
DEAD = "tf.dead"  # not a broker queue: a list in the fleet's Redis store, never drained
BATCH = "tf.batch"  # the batch lane's poller (submits and collects provider batch jobs)
NOOP = "tf.bench.noop"

LANE_ORDER: tuple[Lane, ...] = (Lane.interactive, Lane.standard, Lane.batch)
LANE_PRIORITY: dict[Lane, int] = {Lane.interactive: 9, Lane.standard: 5, Lane.batch: 1}
MAX_PRIORITY = 9


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


INFER_PREFIX = "tf.infer."  # every inference queue's name starts so


def served_tiers(queues: Iterable[str]) -> set[str]:
    """The tiers whose inference queues are among ``queues``."""
    return {
        q.removeprefix(INFER_PREFIX).split(".")[0] for q in queues if q.startswith(INFER_PREFIX)
    }


def infer_queue(tier: str, lane: Lane | str, by_priority: bool = False) -> str:
    queue = f"{INFER_PREFIX}{tier}"
    return queue if by_priority else f"{queue}.{Lane(lane).value}"


def tier_queues(tier: str, by_priority: bool = False) -> tuple[str, ...]:
    """A tier's inference queues, in the order its workers drain them."""
    if by_priority:
        return (infer_queue(tier, Lane.interactive, by_priority=True),)
    return tuple(infer_queue(tier, lane) for lane in LANE_ORDER)


def stage_queue(base: str, lane: Lane | str, by_priority: bool = False) -> str:
    """A (non-inference) stage's queue for a lane: the stage's own name for standard."""
    lane = Lane(lane)
    return base if by_priority or lane is Lane.standard else f"{base}.{lane.value}"


def stage_queues(base: str, by_priority: bool = False) -> tuple[str, ...]:
    """A stage's queues, in the order its workers drain them."""
    if by_priority:
        return (base,)
    return tuple(stage_queue(base, lane) for lane in LANE_ORDER)


def lane_ladders(queues: Sequence[str]) -> list[tuple[str, str, Lane]]:
    """(lower queue, the queue of the lane above, the lower lane) for every lane of
    ``queues`` that has a lane above it among them: where a starved message moves."""
    ladders = []
    for base in (INGRESS, COMPRESS, CLASSIFY, FINALIZE):
        ladders += _ladder([stage_queue(base, lane) for lane in LANE_ORDER], queues)
    for tier in served_tiers(queues):
        ladders += _ladder([infer_queue(tier, lane) for lane in LANE_ORDER], queues)
    return ladders


def _ladder(order: list[str], queues: Sequence[str]) -> list[tuple[str, str, Lane]]:
    if not set(order) <= set(queues):
        return []
    return [(order[i + 1], order[i], LANE_ORDER[i + 1]) for i in range(len(order) - 1)]


def stage_of_queue(queue: str) -> Stage:
    """The stage whose task a queue's messages are for."""
    if queue.startswith(INFER_PREFIX):
        return Stage.infer
    base = queue.removesuffix(".interactive").removesuffix(".batch")
    return next(stage for stage, name in _STAGE_QUEUES.items() if name == base)


def queue_for(
    stage: Stage,
    tier: str | None = None,
    lane: Lane | str | None = None,
    by_priority: bool = False,
) -> str:
    if stage is Stage.infer:
        if tier is None or lane is None:
            raise ValueError("the infer stage is addressed by tier and lane")
        return infer_queue(tier, lane, by_priority)
    return stage_queue(_STAGE_QUEUES[stage], lane or Lane.standard, by_priority)


def queue_names(tiers: Sequence[str], by_priority: bool = False) -> list[str]:
    names = [q for base in (INGRESS, COMPRESS, CLASSIFY) for q in stage_queues(base, by_priority)]
    names += [q for tier in tiers for q in tier_queues(tier, by_priority)]
    return [*names, *stage_queues(FINALIZE, by_priority), BATCH, NOOP]


def declare_queues(tiers: Sequence[str], by_priority: bool = False) -> list[Queue]:
    exchange = Exchange("tierfleet", type="direct")
    # On RabbitMQ every queue a step passes through orders by its lane (the bus stamps each
    # message with its lane's priority), not inference alone: finalize is a queue too.
    prioritized = set(queue_names(tiers, True)) - {NOOP} if by_priority else set()
    return [
        Queue(
            name,
            exchange,
            routing_key=name,
            max_priority=MAX_PRIORITY if name in prioritized else None,
        )
        for name in queue_names(tiers, by_priority)
    ]


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
            "-E",  # task events, for Flower (also set in the app's configuration)
            "-Q",
            ",".join(self.queues),
            "-n",
            f"{self.name}@%h",
            "--prefetch-multiplier",
            str(self.prefetch_multiplier),
        ]


def worker_groups(
    tiers: Sequence[str],
    flush_every: int,
    by_priority: bool = False,
    tier_flush: Mapping[str, int] | None = None,
) -> list[WorkerGroup]:
    """The fleet's worker groups. Inference workers prefetch a whole micro-batch: the
    tier's own size where ``tier_flush`` (the tier table's) gives one, else ``flush_every``."""
    sizes = tier_flush or {}
    groups = [
        WorkerGroup("cache", stage_queues(INGRESS, by_priority)),
        WorkerGroup("compress", stage_queues(COMPRESS, by_priority)),
        WorkerGroup("classify", stage_queues(CLASSIFY, by_priority)),
    ]
    groups += [
        WorkerGroup(
            f"infer-{tier}",
            tier_queues(tier, by_priority),
            prefetch_multiplier=max(1, sizes.get(tier, flush_every)),
        )
        for tier in tiers
    ]
    groups.append(WorkerGroup("finalize", stage_queues(FINALIZE, by_priority)))
    groups.append(WorkerGroup("batch", (BATCH,)))
    return groups
