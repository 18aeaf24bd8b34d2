"""A session's distinct steps, for the step cap that stops runaway agent loops: one Redis
set of step ids per session (a redelivered message adds nothing), its TTL refreshed at each
step so an idle session's count goes away."""

from __future__ import annotations

import redis

from queues import keys


class RedisSessionSteps:
    def __init__(self, client: redis.Redis, ttl_s: int) -> None:
        self.client, self.ttl_s = client, ttl_s

    def count(self, tenant: str, session: str, step_id: str) -> int:
        name = keys.session_steps(tenant, session)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(name, step_id)
            pipe.expire(name, self.ttl_s)
            pipe.scard(name)
            *_, size = pipe.execute()
        return int(size)
