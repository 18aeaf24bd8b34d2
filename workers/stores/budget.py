"""Budgets in Redis, per session, per agent and per tenant: reserve before a paid call,
settle after, atomically over all three scopes (one Lua script run)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

import redis

from policies.budgets import BudgetState, Settlement
from policies.money import to_nano
from queues import keys
from queues.config.budgets import BudgetConfig
from queues.messages import Envelope
from queues.step import AgentStep

BUDGET_TTL_S = 30 * 24 * 3600  # refreshed on every reservation and settlement
NONE = -1  # a limit field set to this: no limit (absent: the scope's default)
SCOPES = ("session", "agent", "tenant")


@dataclass(frozen=True)
class ScopeLimits:
    hard_usd: float | None = None
    soft_usd: float | None = None
    hard_tokens: int | None = None
    soft_tokens: int | None = None

    def fields(self) -> dict[str, int]:
        """The hash fields these limits write (NONE where a limit is not set)."""

        def nano(usd: float | None) -> int:
            return NONE if usd is None else to_nano(usd)

        return {
            "limit": nano(self.hard_usd),
            "soft": nano(self.soft_usd),
            "tlimit": NONE if self.hard_tokens is None else self.hard_tokens,
            "tsoft": NONE if self.soft_tokens is None else self.soft_tokens,
        }


def scope_key(scope: str, tenant: str, name: str) -> str:
    """The hash of one scope: a session or an agent of ``tenant``, or the tenant itself."""
    if scope == "session":
        return keys.session_budget(tenant, name)
    if scope == "agent":
        return keys.agent_budget(tenant, name)
    if scope == "tenant":
        return keys.tenant_budget(tenant)
    raise ValueError(f"unknown budget scope {scope!r}; known: {SCOPES}")


def step_keys(step: AgentStep) -> list[str]:
    """A step's scopes, in SCOPES order."""
    return [
        keys.session_budget(step.tenant, step.session_id),
        keys.agent_budget(step.tenant, step.agent),
        keys.tenant_budget(step.tenant),
    ]


def _limit(raw: bytes | str | None, default: int) -> int | None:
    value = int(raw) if raw is not None else default
    return None if value < 0 else value


class RedisBudgetStore:
    def __init__(
        self,
        client: redis.Redis,
        session: ScopeLimits | None = None,
        agent: ScopeLimits | None = None,
        tenant: ScopeLimits | None = None,
    ) -> None:
        self.client = client
        self.defaults = {
            "session": (session or ScopeLimits()).fields(),
            "agent": (agent or ScopeLimits()).fields(),
            "tenant": (tenant or ScopeLimits()).fields(),
        }
        source = files("workers.stores").joinpath("budget.lua").read_text()
        self.script = client.register_script(source)

    def reserve(
        self,
        env: Envelope,
        reservation: str,
        amount_nano: int,
        tokens: int = 0,
        allowance: tuple[int, int] = (0, 0),
    ) -> str | None:
        """Hold ``amount_nano`` and ``tokens`` in every scope; the scope that refuses, or None
        when all admit it (a redelivered call keeps its reservation). ``allowance``: nano-
        dollars and tokens admitted beyond the limits (a best-effort close)."""
        defaults = [
            v for s in SCOPES for v in (self.defaults[s]["limit"], self.defaults[s]["tlimit"])
        ]
        refused = int(
            self.script(
                keys=step_keys(env.step),
                args=[
                    "reserve",
                    reservation,
                    amount_nano,
                    tokens,
                    BUDGET_TTL_S,
                    *allowance,
                    *defaults,
                ],
            )
        )
        return SCOPES[refused - 1] if refused else None

    def settle(
        self, env: Envelope, reservation: str, actual_nano: int, tokens: int = 0
    ) -> Settlement:
        """Turn a reservation into spend; what it cost beyond the reservation is reported."""
        settled, reserved = self.script(
            keys=step_keys(env.step),
            args=["settle", reservation, max(0, actual_nano), max(0, tokens), BUDGET_TTL_S],
        )
        return Settlement(bool(settled), int(reserved), max(0, actual_nano))

    def release_step(self, env: Envelope) -> int:
        prefix = keys.reservation_prefix(env.step.tenant, env.step.step_id)
        return int(self.script(keys=step_keys(env.step), args=["release_step", prefix]))

    def set_limits(self, scope: str, tenant: str, name: str, limits: ScopeLimits) -> None:
        """Limits for one session, agent or tenant (``name`` is the tenant's own name for the
        tenant scope); they replace the defaults for it."""
        key = scope_key(scope, tenant, name)
        self.client.hset(key, mapping=limits.fields())  # type: ignore[arg-type]
        self.client.expire(key, BUDGET_TTL_S)

    def _state(self, key: str, scope: str) -> BudgetState:
        fields = [
            "limit", "spent", "reserved", "tlimit", "tspent", "treserved", "soft", "tsoft",
            "overshoot",
        ]  # fmt: skip
        raw = dict(zip(fields, self.client.hmget(key, fields), strict=True))
        defaults = self.defaults[scope]
        return BudgetState(
            limit_nano=_limit(raw["limit"], defaults["limit"]),
            spent_nano=int(raw["spent"] or 0),
            reserved_nano=int(raw["reserved"] or 0),
            limit_tokens=_limit(raw["tlimit"], defaults["tlimit"]),
            spent_tokens=int(raw["tspent"] or 0),
            reserved_tokens=int(raw["treserved"] or 0),
            soft_nano=_limit(raw["soft"], defaults["soft"]),
            soft_tokens=_limit(raw["tsoft"], defaults["tsoft"]),
            scope=scope,
            overshoot_nano=int(raw["overshoot"] or 0),
        )

    def state(self, tenant: str, session_id: str) -> BudgetState:
        return self._state(keys.session_budget(tenant, session_id), "session")

    def agent_state(self, tenant: str, agent: str) -> BudgetState:
        return self._state(keys.agent_budget(tenant, agent), "agent")

    def tenant_state(self, tenant: str) -> BudgetState:
        return self._state(keys.tenant_budget(tenant), "tenant")

    def states(self, env: Envelope) -> list[BudgetState]:
        """The step's scopes: its session, its agent, its tenant."""
        return [self._state(k, s) for k, s in zip(step_keys(env.step), SCOPES, strict=True)]


def budget_store(client: redis.Redis, settings: BudgetConfig) -> RedisBudgetStore:
    """The store with the settings' default limits for scopes that set none of their own."""
    s = settings
    return RedisBudgetStore(
        client,
        session=ScopeLimits(
            s.session_budget_usd,
            s.session_soft_budget_usd,
            s.session_budget_tokens,
            s.session_soft_budget_tokens,
        ),
        agent=ScopeLimits(
            s.agent_budget_usd,
            s.agent_soft_budget_usd,
            s.agent_budget_tokens,
            s.agent_soft_budget_tokens,
        ),
        tenant=ScopeLimits(
            s.tenant_budget_usd,
            s.tenant_soft_budget_usd,
            s.tenant_budget_tokens,
            s.tenant_soft_budget_tokens,
        ),
    )
