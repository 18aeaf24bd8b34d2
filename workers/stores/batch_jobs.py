"""The batch lane's state in Redis: pending steps per model, jobs and their steps.

Keys (built in ``queues.keys``): the pending hash per model (reservation -> parked step),
the pending zset (model -> when its oldest pending step was parked), a hash per job (custom
id -> parked step), the jobs hash (job id -> job), and a marker per parked reservation (so a
redelivered inference message does not park it twice). Every one expires ``PARKED_TTL_S``
after its last write: far beyond any provider's batch window (24 h), so only abandoned
state ever expires.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from importlib.resources import files

import redis
from redis.lock import Lock

from queues import keys
from workers.ports import BatchJob, ParkedStep

PENDING = keys.BATCH_PENDING
JOBS = keys.BATCH_JOBS
PARKED_TTL_S = 7 * 24 * 3600


def _item(raw: bytes | str) -> ParkedStep:
    return ParkedStep(**json.loads(raw))


class RedisBatchJobs:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._take = client.register_script(
            files("workers.stores").joinpath("batch_take.lua").read_text()
        )

    def park(self, item: ParkedStep, now: float) -> int | None:
        marker = keys.batch_parked(item.reservation)
        if not self.client.set(marker, 1, nx=True, ex=PARKED_TTL_S):
            return None
        pending = keys.batch_pending(item.model)
        pipe = self.client.pipeline()
        pipe.hset(pending, item.reservation, json.dumps(asdict(item)))
        pipe.expire(pending, PARKED_TTL_S)
        pipe.zadd(PENDING, {item.model: now}, nx=True)
        pipe.expire(PENDING, PARKED_TTL_S)
        pipe.hlen(pending)
        return int(pipe.execute()[-1])

    def due(self, older_than: float) -> list[str]:
        models = self.client.zrangebyscore(PENDING, "-inf", older_than)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in models]

    def pending(self, model: str) -> int:
        return int(self.client.hlen(keys.batch_pending(model)))

    def take(self, model: str, provider: str, limit: int, now: float) -> BatchJob | None:
        job = BatchJob(uuid.uuid4().hex, model, provider, "submitting", now)
        taken = self._take(
            keys=[keys.batch_pending(model), PENDING, keys.batch_job(job.job_id), JOBS],
            args=[model, limit, job.job_id, json.dumps(asdict(job)), now, PARKED_TTL_S],
        )
        return job if int(taken) else None

    def items(self, job_id: str) -> dict[str, ParkedStep]:
        raw = self.client.hgetall(keys.batch_job(job_id))
        return {(k.decode() if isinstance(k, bytes) else k): _item(v) for k, v in raw.items()}

    def submitted(self, job: BatchJob, provider_batch_id: str, now: float) -> None:
        meta = BatchJob(
            job.job_id, job.model, job.provider, "submitted", job.created_at, provider_batch_id, now
        )
        self.client.hset(JOBS, job.job_id, json.dumps(asdict(meta)))
        self.client.expire(JOBS, PARKED_TTL_S)

    def jobs(self) -> list[BatchJob]:
        return [BatchJob(**json.loads(v)) for v in self.client.hvals(JOBS)]

    def done(self, job_id: str, custom_id: str) -> None:
        key = keys.batch_job(job_id)
        self.client.hdel(key, custom_id)
        if not self.client.exists(key):
            self.client.hdel(JOBS, job_id)

    @contextmanager
    def exclusive(self, ttl_s: float) -> Iterator[bool]:
        """One poller at a time. While a poll holds the lock its expiry is pushed back every
        third of ``ttl_s``, so a long poll never loses it to a second poller; a poller that
        dies stops renewing, and the lock expires."""
        # Not thread-local: the renewing thread must see the token the poll took.
        lock = self.client.lock(
            keys.BATCH_POLL_LOCK, timeout=ttl_s, blocking=False, thread_local=False
        )
        got = bool(lock.acquire(blocking=False))
        stop = threading.Event()
        renewer = threading.Thread(target=_renew, args=(lock, ttl_s / 3, stop), daemon=True)
        if got:
            renewer.start()
        try:
            yield got
        finally:
            stop.set()
            if got:
                renewer.join()
                with suppress(redis.exceptions.LockError):  # it expired while we worked
                    lock.release()


def _renew(lock: Lock, every_s: float, stop: threading.Event) -> None:
    while not stop.wait(every_s):
        try:
            lock.reacquire()
        except redis.exceptions.LockError:
            return  # it expired before we could renew it: another poller may hold it now
        except redis.exceptions.RedisError:
            continue  # a blink: the next round tries again
