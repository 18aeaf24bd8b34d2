"""Small Redis stores: the cost ledger (a stream, archived past its cap), the exact cache,
the finalize guard and step results written outside finalize."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis
import structlog
from celery import Celery
from celery import states as celery_states

from queues import keys
from queues.messages import StepResult
from workers.stores.archive import JsonlArchive

log = structlog.get_logger("tierfleet.stores")


class StreamLedger:
    """Every finished step appends one entry; the stream survives worker and Flower restarts.

    Bounded without losing a bill: past ``keep`` entries (plus a tenth's headroom, so the
    archiver runs in chunks, not on every append) the oldest entries are written to the
    archive and only then trimmed from the stream. With no archive nothing is trimmed: the
    stream grows until Redis (noeviction) refuses the write, which fails loudly."""

    CHUNK = 10_000  # entries per archive write

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        keep: int,
        archive: JsonlArchive | None,
        lock_s: float = 60.0,
    ) -> None:
        self.client, self.stream, self.keep = client, stream, keep
        self.archive, self.lock_s = archive, lock_s

    def append(self, entry: dict[str, Any]) -> None:
        self.append_many([entry])

    def append_many(self, entries: Sequence[dict[str, Any]]) -> None:
        """In one MULTI/EXEC: all of them or none."""
        with self.client.pipeline(transaction=True) as pipe:
            for entry in entries:
                pipe.xadd(self.stream, {k: json.dumps(v) for k, v in entry.items()})
            pipe.xlen(self.stream)
            *_, length = pipe.execute()
        if int(length) > self.keep + max(1, self.keep // 10):
            self.archive_oldest()

    def archive_oldest(self) -> int:
        """Move the entries past ``keep`` to the archive; how many moved (0 if another
        process holds the archiver's lock)."""
        if self.archive is None:
            log.warning("stream_over_cap_without_archive", stream=self.stream, keep=self.keep)
            return 0
        lock = self.client.lock(keys.archive_lock(self.stream), timeout=self.lock_s)
        if not lock.acquire(blocking=False):
            return 0
        moved = 0
        try:
            while (excess := int(self.client.xlen(self.stream)) - self.keep) > 0:
                page: Any = self.client.xrange(self.stream, count=min(excess, self.CHUNK))
                if not page:
                    break
                self.archive.append(
                    [{"id": as_text(i), "entry": decode_fields(f)} for i, f in page]
                )
                # Only what was written goes: every id up to and including the last one.
                self.client.xtrim(
                    self.stream, minid=_next_id(as_text(page[-1][0])), approximate=False
                )
                moved += len(page)
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("archive_lock_expired", stream=self.stream)
        return moved


def as_text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _next_id(entry_id: str) -> str:
    """The smallest stream id after ``entry_id`` (``ms-seq``)."""
    ms, seq = entry_id.split("-")
    return f"{ms}-{int(seq) + 1}"


def decode_fields(fields: dict[Any, Any]) -> dict[str, Any]:
    return {as_text(k): json.loads(v) for k, v in fields.items()}


def read_ledger(
    client: redis.Redis, stream: str, archive: JsonlArchive | None = None
) -> list[dict[str, Any]]:
    """Every entry, oldest first: the archived ones, then the stream's, read in pages. An
    entry archived twice (a crash between write and trim) is read once."""
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in archive.read() if archive is not None else ():
        if record["id"] not in seen:
            seen.add(record["id"])
            entries.append(record["entry"])
    start = "-"
    while True:
        page: Any = client.xrange(stream, min=start, max="+", count=5000)
        for entry_id, fields in page:
            if as_text(entry_id) not in seen:
                entries.append(decode_fields(fields))
            start = "(" + as_text(entry_id)  # exclusive: the next page starts after this id
        if len(page) < 5000:
            return entries


class RedisExactCache:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.client, self.ttl_s = client, ttl_s

    def get(self, key: str) -> dict[str, Any] | None:
        raw: Any = self.client.get(key)
        return json.loads(raw) if raw else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        self.client.set(key, json.dumps(entry), ex=self.ttl_s)

    def drop_prompt_version(self, prompt_version: str) -> int:
        """Delete the exact entries of a prompt version (keys carry it: see exact_key)."""
        dropped = 0
        pattern = keys.exact_cache_pattern(prompt_version)
        batch: list[Any] = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                dropped += int(self.client.delete(*batch))
                batch = []
        if batch:
            dropped += int(self.client.delete(*batch))
        return dropped


class RedisFinalizeGuard:
    """Claim first, then side effects, then mark done. The claim keeps two finalizes of one
    step delivered at once from both doing the effects; it expires (``claim_s``, shorter
    than the broker's redelivery) so a finalize that died holding it is redone when its
    message comes back. Marked done after the effects: a crash in between repeats a ledger
    entry (reports keep one per step) rather than losing it."""

    def __init__(self, client: redis.Redis, ttl_s: int, claim_s: float = 30.0) -> None:
        self.client, self.ttl_s, self.claim_s = client, ttl_s, claim_s

    def done(self, tenant: str, step_id: str) -> bool:
        return bool(self.client.exists(keys.final_guard(tenant, step_id)))

    def claim(self, tenant: str, step_id: str) -> bool:
        key = keys.final_claim(tenant, step_id)
        return bool(self.client.set(key, 1, nx=True, px=int(self.claim_s * 1000)))

    def release(self, tenant: str, step_id: str) -> None:
        self.client.delete(keys.final_claim(tenant, step_id))

    def mark(self, tenant: str, step_id: str) -> None:
        pipe = self.client.pipeline()
        pipe.set(keys.final_guard(tenant, step_id), 1, ex=self.ttl_s)
        pipe.delete(keys.final_claim(tenant, step_id))
        pipe.zrem(keys.INFLIGHT, keys.result_id(tenant, step_id))  # no longer in flight
        pipe.execute()

    def forget(self, tenant: str, step_id: str) -> None:
        self.client.delete(keys.final_guard(tenant, step_id), keys.final_claim(tenant, step_id))


class RedisDeliveries:
    """Redeliveries counted per message id, kept a day (far longer than any redelivery)."""

    TTL_S = 24 * 3600

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def count(self, message_id: str, redelivered: bool) -> int:
        if not redelivered:
            return 1  # a first delivery costs no Redis call
        key = keys.deliveries(message_id)
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.TTL_S)
        again, _ = pipe.execute()
        return 1 + int(again)


class BackendResults:
    """Writes a result into the Celery result backend under the step's result id."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def store_if_absent(self, result: StepResult) -> bool:
        """Store the result unless the step has one already; whether it was stored."""
        task_id = keys.result_id(result.tenant, result.step_id)
        if self.app.backend.get_task_meta(task_id)["status"] != celery_states.PENDING:
            return False
        self.app.backend.store_result(
            task_id, result.model_dump(mode="json"), celery_states.SUCCESS
        )
        return True
