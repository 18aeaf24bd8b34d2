"""Leases on the messages a worker holds, for the Redis broker.

Kombu keeps every fetched, unacknowledged message in a hash, indexed by the time it was
fetched (``unacked_index``); any worker's periodic sweep puts back on its queue a message
fetched more than ``visibility_timeout`` ago, whether its worker is dead or only slow. With a
long timeout a killed worker strands its steps for that long; with a short one a slow call is
handed to a second worker while the first is still in it.

The lease keeper removes the trade-off: a daemon thread in each worker's main process
re-stamps, every quarter of the timeout, the index entry of each message this worker holds
(prefetched, running, or waiting out a countdown). A live worker keeps what it holds however
long a call takes; a killed one's messages go back to their queues ``visibility_timeout``
after its last stamp (plus the sweep interval). Only existing entries are re-stamped (``XX``),
so a message acknowledged in the meantime is never brought back.

The messages a worker holds are its consuming channel's ``qos._delivered`` (kombu's
virtual transport keeps them there until they are acknowledged)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import structlog

log = structlog.get_logger("tierfleet.lease")

UNACKED_INDEX = "unacked_index"  # kombu's default ``unacked_index_key``


def held_by(consumer: Any) -> Callable[[], list[str]]:
    """The delivery tags a Celery worker's consumer holds unacknowledged right now."""

    def tags() -> list[str]:
        channel = getattr(getattr(consumer, "task_consumer", None), "channel", None)
        delivered = getattr(getattr(channel, "qos", None), "_delivered", None)
        if delivered is None:
            return []
        for _ in range(5):  # the consumer's thread may change it while we copy it
            try:
                return [str(tag) for tag in list(delivered)]
            except RuntimeError:
                continue
        return []

    return tags


class LeaseKeeper:
    def __init__(
        self,
        held: Callable[[], list[str]],
        client: redis.Redis,
        every_s: float,
        index_key: str = UNACKED_INDEX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.held, self.client, self.every_s = held, client, every_s
        self.index_key, self.clock = index_key, clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def stamp(self) -> int:
        """Re-stamp every held message still in the index; how many were."""
        tags = self.held()
        if not tags:
            return 0
        now = self.clock()
        changed: Any = self.client.zadd(self.index_key, dict.fromkeys(tags, now), xx=True, ch=True)
        return int(changed)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.stamp()
            except Exception as exc:  # a Redis blink: the next round stamps again
                log.warning("lease_stamp_failed", error=f"{type(exc).__name__}: {exc}")

    def start(self) -> LeaseKeeper:
        self._thread = threading.Thread(target=self._run, name="tierfleet-lease", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.every_s + 1)
