"""The semantic cache's judged would-be hits, in a capped Redis stream: the cache worker
reads the recent ones to set its threshold, `tierfleet cache audit` all that are kept. The
threshold each cache worker serves at is published beside them (a hash by scorer, with a
TTL) for the operator to see."""

from __future__ import annotations

import json
from typing import Any

import redis

from queues import keys
from workers.stores.redis_stores import as_text, decode_fields


class RedisAudits:
    def __init__(
        self,
        client: redis.Redis,
        stream: str = keys.CACHE_AUDITS,
        keep: int = keys.CACHE_AUDITS_KEEP,
    ) -> None:
        self.client, self.stream, self.keep = client, stream, keep

    def append(self, entry: dict[str, Any]) -> None:
        fields = {k: json.dumps(v) for k, v in entry.items()}
        self.client.xadd(self.stream, fields, maxlen=self.keep, approximate=True)  # type: ignore[arg-type]

    def recent(self, count: int) -> list[dict[str, Any]]:
        """The latest ``count`` entries, newest first."""
        page: Any = self.client.xrevrange(self.stream, count=count)
        return [decode_fields(fields) for _, fields in page]

    def publish(self, scorer: str, state: dict[str, Any]) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(keys.CACHE_BOUND, scorer, json.dumps(state))
            pipe.expire(keys.CACHE_BOUND, keys.CACHE_BOUND_TTL_S)
            pipe.execute()

    def published(self) -> dict[str, dict[str, Any]]:
        raw: Any = self.client.hgetall(keys.CACHE_BOUND)
        return {as_text(k): json.loads(v) for k, v in raw.items()}
