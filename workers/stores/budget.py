"""Session budgets in Redis: reserve before a paid call, settle after, atomically (Lua)."""

from __future__ import annotations

from importlib.resources import files

import redis

from policies.budgets import BudgetState
from policies.tiers import to_nano
from queues.messages import Envelope

BUDGET_TTL_S = 30 * 24 * 3600


def budget_key(tenant: str, session_id: str) -> str:
    return f"tf:budget:{tenant}:{session_id}"


class RedisBudgetStore:
    def __init__(self, client: redis.Redis, default_limit_usd: float | None = None) -> None:
        self.client = client
        self.default_limit = -1 if default_limit_usd is None else to_nano(default_limit_usd)
        source = files("workers.stores").joinpath("budget.lua").read_text()
        self.script = client.register_script(source)

    def _key(self, env: Envelope) -> str:
        return budget_key(env.step.tenant, env.step.session_id)

    def reserve(self, env: Envelope, reservation: str, amount_nano: int) -> BudgetState | None:
        ok, limit, spent, reserved = self.script(
            keys=[self._key(env)],
            args=["reserve", reservation, amount_nano, self.default_limit, BUDGET_TTL_S],
        )
        state = BudgetState(None if int(limit) < 0 else int(limit), int(spent), int(reserved))
        return state if int(ok) else None

    def settle(self, env: Envelope, reservation: str, actual_nano: int) -> None:
        self.script(keys=[self._key(env)], args=["settle", reservation, actual_nano])

    def release_step(self, env: Envelope) -> int:
        return int(self.script(keys=[self._key(env)], args=["release_step", env.step.step_id]))

    def set_limit(self, tenant: str, session_id: str, limit_usd: float | None) -> None:
        key = budget_key(tenant, session_id)
        if limit_usd is None:
            self.client.hdel(key, "limit")
        else:
            self.client.hset(key, "limit", to_nano(limit_usd))
            self.client.expire(key, BUDGET_TTL_S)

    def state(self, tenant: str, session_id: str) -> BudgetState:
        raw = self.client.hmget(budget_key(tenant, session_id), ["limit", "spent", "reserved"])
        limit = int(raw[0]) if raw[0] is not None else self.default_limit
        return BudgetState(None if limit < 0 else limit, int(raw[1] or 0), int(raw[2] or 0))
