"""Dead letters: parked in ``tf.dead``, a Redis list in the fleet's store (whatever the
broker), each with the reason, the stage and the envelope, to be listed and replayed by an
operator. Nothing consumes it; new letters go in at the head, the oldest sit at the tail.

It is bounded: past ``keep`` letters (plus a tenth's headroom) the oldest are written to the
archive and only then removed, each by its exact value, so a letter replayed (removed) in
the meantime costs nothing and no letter is removed unwritten. A crash in between leaves them
on the list, to be archived again; readers of the archive keep one of each."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from queues import keys
from queues.records import DeadLetterRecord
from queues.topology import DEAD
from workers.stores.archive import JsonlArchive

log = structlog.get_logger("tierfleet.dead")


@dataclass(frozen=True)
class DeadLetter:
    raw: bytes  # the stored value, used to remove exactly this one on replay
    record: DeadLetterRecord


def dead_record(
    *, step_id: str | None, stage: str, reason: str, envelope: str | None, raw: str | None = None
) -> dict[str, Any]:
    """A dead letter as tf.dead keeps it (``queues.records.DeadLetterRecord``)."""
    letter = DeadLetterRecord(
        step_id=step_id, stage=stage, reason=reason, envelope=envelope, raw=raw
    )
    return letter.to_record()


class RedisDeadLetters:
    CHUNK = 1000  # letters per archive write

    def __init__(
        self,
        client: redis.Redis,
        keep: int = 10_000,
        archive: JsonlArchive | None = None,
        lock_s: float = 60.0,
    ) -> None:
        self.client, self.keep, self.archive, self.lock_s = client, keep, archive, lock_s

    def put(self, record: dict[str, Any]) -> None:
        self.client.lpush(DEAD, json.dumps(record))
        if int(self.client.llen(DEAD)) > self.keep + max(1, self.keep // 10):
            self.archive_oldest()

    def archive_oldest(self) -> int:
        """Move the letters past ``keep`` to the archive; how many moved (0 if another
        process is archiving)."""
        if self.archive is None:
            log.warning("dead_letters_over_cap_without_archive", keep=self.keep)
            return 0
        lock = self.client.lock(keys.archive_lock(DEAD), timeout=self.lock_s)
        if not lock.acquire(blocking=False):
            return 0
        moved = 0
        try:
            while (excess := int(self.client.llen(DEAD)) - self.keep) > 0:
                raws: Any = self.client.lrange(DEAD, -min(excess, self.CHUNK), -1)
                if not raws:
                    break
                oldest_first = list(reversed(raws))
                self.archive.append([_decode(raw) for raw in oldest_first])
                pipe = self.client.pipeline()
                for raw in oldest_first:  # written and fsynced: now they may go
                    pipe.lrem(DEAD, -1, raw)
                pipe.execute()
                moved += len(raws)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("archive_lock_expired", source=DEAD)
        return moved


def read_archived_dead(archive: JsonlArchive) -> list[DeadLetterRecord]:
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
            letters.append(DeadLetterRecord.model_validate(record))
    return letters


def _decode(raw: bytes | str) -> dict[str, Any]:
    """A letter's record. (Letters parked before tf.dead moved out of the broker are kombu
    messages, their record the body.)"""
    doc: dict[str, Any] = json.loads(raw)
    if "body" in doc and "properties" in doc:
        body = doc["body"]
        if doc["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        decoded: dict[str, Any] = json.loads(body)
        return decoded
    return doc


def list_dead(client: redis.Redis, limit: int = 1000) -> Iterator[DeadLetter]:
    """Oldest first, without removing them."""
    raws: Any = client.lrange(DEAD, -limit, -1)
    for raw in reversed(raws):
        yield DeadLetter(raw, DeadLetterRecord.model_validate(_decode(raw)))


def remove_dead(client: redis.Redis, letter: DeadLetter) -> bool:
    return bool(client.lrem(DEAD, 1, letter.raw))  # type: ignore[arg-type]
