"""Dead letters: parked on the ``tf.dead`` queue (a Redis list that no worker drains), each
with the reason, the stage and the envelope, to be listed and replayed by an operator.

The queue is bounded: past ``keep`` letters (plus a tenth's headroom) the oldest are taken
off it (through kombu, so it works on either broker), written to the archive, and only then
acknowledged. A crash in between leaves them unacknowledged, to come back to the queue and be
archived again; readers of the archive keep one of each."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from celery import Celery
from kombu.entity import Exchange, Queue

from queues import keys
from queues.topology import DEAD
from workers.stores.archive import JsonlArchive

log = structlog.get_logger("tierfleet.dead")


@dataclass(frozen=True)
class DeadLetter:
    raw: bytes  # the broker's stored message, used to remove exactly this one on replay
    record: dict[str, Any]


def dead_record(
    *, step_id: str | None, stage: str, reason: str, envelope: str | None, raw: str | None = None
) -> dict[str, Any]:
    return {
        "step_id": step_id,
        "stage": stage,
        "reason": reason,
        "at": time.time(),
        "envelope": envelope,
        "raw": raw,
    }


class BrokerDeadLetters:
    """Publishes dead letters as plain JSON messages on the dead-letter queue."""

    CHUNK = 1000  # letters per archive write

    def __init__(
        self,
        app: Celery,
        client: redis.Redis | None = None,
        keep: int = 10_000,
        archive: JsonlArchive | None = None,
        lock_s: float = 60.0,
    ) -> None:
        self.app, self.client, self.keep, self.archive = app, client, keep, archive
        self.lock_s = lock_s
        self.queue = Queue(DEAD, Exchange("tierfleet", type="direct"), routing_key=DEAD)

    def put(self, record: dict[str, Any]) -> None:
        with self.app.producer_or_acquire() as producer:
            producer.publish(
                record,
                exchange=self.queue.exchange,
                routing_key=DEAD,
                serializer="json",
                declare=[self.queue],
                retry=True,
            )
        if self.size() > self.keep + max(1, self.keep // 10):
            self.archive_oldest()

    def size(self) -> int:
        with self.app.connection_for_write() as conn:
            _, count, _ = self.queue(conn.default_channel).queue_declare()
            return int(count)

    def archive_oldest(self) -> int:
        """Move the letters past ``keep`` to the archive; how many moved (0 if another
        process is archiving)."""
        if self.archive is None or self.client is None:
            log.warning("dead_letters_over_cap_without_archive", keep=self.keep)
            return 0
        lock = self.client.lock(keys.archive_lock(DEAD), timeout=self.lock_s)
        if not lock.acquire(blocking=False):
            return 0
        moved = 0
        try:
            with self.app.connection_for_write() as conn:
                bound = self.queue(conn.default_channel)
                while (excess := self.size() - self.keep) > 0:
                    taken = []
                    for _ in range(min(excess, self.CHUNK)):
                        message = bound.get(no_ack=False, accept=["json"])
                        if message is None:
                            break
                        taken.append(message)
                    if not taken:
                        break
                    self.archive.append([m.payload for m in taken])
                    for message in taken:  # written and fsynced: now they may go
                        message.ack()
                    moved += len(taken)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("archive_lock_expired", source=DEAD)
        return moved


def read_archived_dead(archive: JsonlArchive) -> list[dict[str, Any]]:
    """Archived dead letters, oldest first, each once."""
    seen: set[tuple[Any, ...]] = set()
    letters = []
    for record in archive.read():
        identity = (
            record.get("step_id"),
            record.get("stage"),
            record.get("at"),
            record.get("reason"),
        )
        if identity not in seen:
            seen.add(identity)
            letters.append(record)
    return letters


def _decode(raw: bytes) -> dict[str, Any]:
    message = json.loads(raw)
    body = message["body"]
    if message.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body)
    decoded: dict[str, Any] = json.loads(body)
    return decoded


def list_dead(client: redis.Redis, limit: int = 1000) -> Iterator[DeadLetter]:
    """Oldest first. Reads the queue's Redis list without consuming it."""
    raws: Any = client.lrange(DEAD, -limit, -1)
    for raw in reversed(raws):
        yield DeadLetter(raw, _decode(raw))


def remove_dead(client: redis.Redis, letter: DeadLetter) -> bool:
    return bool(client.lrem(DEAD, 1, letter.raw))  # type: ignore[arg-type]
