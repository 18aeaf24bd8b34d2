"""The batch lane's state in Redis: pending steps per model, jobs and their steps.

Keys: ``tf:batch:pending:<model>`` (hash reservation -> parked step), ``tf:batch:pending``
(zset model -> when its oldest pending step was parked), ``tf:batch:job:<id>`` (hash custom
id -> parked step), ``tf:batch:jobs`` (hash job id -> job), ``tf:batch:parked:<reservation>``
(marks a step parked, so a redelivered inference message does not park it twice).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from importlib.resources import files

import redis

from workers.ports import BatchJob, ParkedStep

PENDING = "tf:batch:pending"
JOBS = "tf:batch:jobs"
LOCK = "tf:batch:poll-lock"
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
        if not self.client.set(f"tf:batch:parked:{item.reservation}", 1, nx=True, ex=PARKED_TTL_S):
            return None
        pipe = self.client.pipeline()
        pipe.hset(f"{PENDING}:{item.model}", item.reservation, json.dumps(asdict(item)))
        pipe.zadd(PENDING, {item.model: now}, nx=True)
        pipe.hlen(f"{PENDING}:{item.model}")
        return int(pipe.execute()[-1])

    def due(self, older_than: float) -> list[str]:
        models = self.client.zrangebyscore(PENDING, "-inf", older_than)
        return [m.decode() if isinstance(m, bytes) else str(m) for m in models]

    def pending(self, model: str) -> int:
        return int(self.client.hlen(f"{PENDING}:{model}"))

    def take(self, model: str, provider: str, limit: int, now: float) -> BatchJob | None:
        job = BatchJob(uuid.uuid4().hex, model, provider, "submitting", now)
        taken = self._take(
            keys=[f"{PENDING}:{model}", PENDING, f"tf:batch:job:{job.job_id}", JOBS],
            args=[model, limit, job.job_id, json.dumps(asdict(job)), now],
        )
        return job if int(taken) else None

    def items(self, job_id: str) -> dict[str, ParkedStep]:
        raw = self.client.hgetall(f"tf:batch:job:{job_id}")
        return {(k.decode() if isinstance(k, bytes) else k): _item(v) for k, v in raw.items()}

    def submitted(self, job: BatchJob, provider_batch_id: str, now: float) -> None:
        meta = BatchJob(
            job.job_id, job.model, job.provider, "submitted", job.created_at, provider_batch_id, now
        )
        self.client.hset(JOBS, job.job_id, json.dumps(asdict(meta)))

    def jobs(self) -> list[BatchJob]:
        return [BatchJob(**json.loads(v)) for v in self.client.hvals(JOBS)]

    def done(self, job_id: str, custom_id: str) -> None:
        key = f"tf:batch:job:{job_id}"
        self.client.hdel(key, custom_id)
        if not self.client.exists(key):
            self.client.hdel(JOBS, job_id)

    @contextmanager
    def exclusive(self, ttl_s: float) -> Iterator[bool]:
        lock = self.client.lock(LOCK, timeout=ttl_s, blocking=False)
        got = bool(lock.acquire(blocking=False))
        try:
            yield got
        finally:
            if got:
                with suppress(redis.exceptions.LockError):  # it expired while we worked
                    lock.release()
