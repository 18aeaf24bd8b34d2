"""Small Redis stores: the cost ledger (a stream), the exact cache, the finalize guard and
step results written outside finalize."""

from __future__ import annotations

import json
from typing import Any

import redis
from celery import Celery
from celery import states as celery_states

from queues import keys
from queues.messages import StepResult


class StreamLedger:
    """Every finished step appends one entry; the stream survives worker and Flower restarts."""

    def __init__(self, client: redis.Redis, stream: str, maxlen: int) -> None:
        self.client, self.stream, self.maxlen = client, stream, maxlen

    def append(self, entry: dict[str, Any]) -> None:
        fields = {k: json.dumps(v) for k, v in entry.items()}
        self.client.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read_ledger(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    """The whole stream, oldest first, read in pages."""
    entries: list[dict[str, Any]] = []
    start = "-"
    while True:
        page: Any = client.xrange(stream, min=start, max="+", count=5000)
        for entry_id, fields in page:
            entries.append({_text(k): json.loads(v) for k, v in fields.items()})
            start = "(" + _text(entry_id)  # exclusive: the next page starts after this id
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
    """Marks a step finalized once its side effects (ledger, cache, budget) are done, so a
    redelivered finalize skips them. Marked after the effects: a crash in between repeats a
    ledger entry (reports keep one per step) rather than losing it."""

    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.client, self.ttl_s = client, ttl_s

    def done(self, tenant: str, step_id: str) -> bool:
        return bool(self.client.exists(keys.final_guard(tenant, step_id)))

    def mark(self, tenant: str, step_id: str) -> None:
        self.client.set(keys.final_guard(tenant, step_id), 1, ex=self.ttl_s)

    def forget(self, tenant: str, step_id: str) -> None:
        self.client.delete(keys.final_guard(tenant, step_id))


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
