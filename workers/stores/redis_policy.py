"""Start-up check: the fleet's Redis must refuse writes at its memory cap, never evict.

An evicting Redis (``allkeys-*`` or ``volatile-*``) drops keys on its own when full: a
session's budget and reservations (keys with a TTL, the first ``volatile-*`` picks), a
finalize guard, the ledger stream. Budgets would silently reset and bills vanish. With
``noeviction`` a full Redis fails the write, the stage retries, and the operator sees it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
import structlog

log = structlog.get_logger("tierfleet.redis")

EVICTING = ("allkeys-", "volatile-")


def where(url: str) -> str:
    """A Redis URL without its credentials, for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


def eviction_problem(client: redis.Redis, where: str) -> str | None:
    """Why this Redis may drop the fleet's keys on its own; None if it will not (or if it
    does not let us ask: managed Redis often disables CONFIG, and that is logged)."""
    try:
        config: Any = client.config_get("maxmemory-policy")
    except redis.exceptions.ResponseError as exc:
        log.warning("redis_policy_unknown", redis=where, error=str(exc))
        return None
    policy = config.get("maxmemory-policy", "noeviction")
    if policy.startswith(EVICTING):
        return (
            f"the Redis at {where} evicts keys when full (maxmemory-policy {policy}): budgets, "
            "reservations and ledger entries could vanish; set maxmemory-policy noeviction, or "
            "TIERFLEET_ALLOW_EVICTING_REDIS=true to start anyway"
        )
    return None
