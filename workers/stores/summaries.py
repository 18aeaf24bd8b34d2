"""The cheap tier's summaries of dropped exchanges, per session: one Redis hash each, and a
claim key so that one exchange is sent to be summarized once however many calls drop it."""

from __future__ import annotations

import redis

from queues import keys

CLAIM_TTL_S = 600  # an unanswered claim (the summary step failed) may be retried after this


class RedisSummaries:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.client, self.ttl_s = client, ttl_s

    def get(self, tenant: str, session: str) -> dict[str, str]:
        raw: dict[bytes, bytes] = self.client.hgetall(keys.summaries(tenant, session))  # type: ignore[assignment]
        return {k.decode(): v.decode() for k, v in raw.items()}

    def claim(self, tenant: str, session: str, key: str) -> bool:
        """True for the first caller in ``CLAIM_TTL_S``: that one submits the summary step."""
        claim = keys.summary_claim(tenant, session, key)
        return bool(self.client.set(claim, 1, nx=True, ex=CLAIM_TTL_S))

    def put(self, tenant: str, session: str, key: str, text: str) -> None:
        name = keys.summaries(tenant, session)
        with self.client.pipeline() as pipe:
            pipe.hset(name, key, text)
            pipe.expire(name, self.ttl_s)
            pipe.execute()
