"""Budget limits per session, agent and tenant (defaults for scopes that set none of their
own), economy mode past a soft limit, and output allowances by task kind. A soft limit
above its hard limit fails when the settings are read."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator


class BudgetConfig(BaseModel):
    # Budgets, per session, per agent and per tenant: defaults for scopes that set none of
    # their own (Fleet.set_session_budget / set_agent_budget / set_tenant_budget). Hard
    # limits refuse the call that would cross them (budget_exceeded); past a soft limit a
    # step runs in economy mode.
    session_budget_usd: float | None = None  # hard; None = unlimited
    session_soft_budget_usd: float | None = None
    session_budget_tokens: int | None = None
    session_soft_budget_tokens: int | None = None
    agent_budget_usd: float | None = None
    agent_soft_budget_usd: float | None = None
    agent_budget_tokens: int | None = None
    agent_soft_budget_tokens: int | None = None
    # A tenant's limits span all its agents and sessions (the whole fleet).
    tenant_budget_usd: float | None = None
    tenant_soft_budget_usd: float | None = None
    tenant_budget_tokens: int | None = None
    tenant_soft_budget_tokens: int | None = None
    # Economy mode: start no higher than this tier (None: the cheapest), a history budget,
    # and this factor on the window, tool-result and max_tokens allowances.
    economy_max_tier: str | None = None
    economy_history_tokens: int = 600
    # A session that has submitted this many steps is stopped (budget_exceeded): an agent
    # stuck in a loop; its count is forgotten after session_steps_ttl_s without a step.
    session_max_steps: int | None = Field(default=500, ge=1)
    # A step with on_budget="close" that a hard budget refuses gets one call on the cheapest
    # tier, at most close_max_tokens long, admitted up to close_allowance_usd beyond the
    # limit that refused it (reserved and settled like any call: never unseen).
    close_allowance_usd: float = Field(default=0.002, ge=0)
    close_max_tokens: int = Field(default=150, ge=1)
    session_steps_ttl_s: int = Field(default=24 * 3600, ge=60)
    economy_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    # max_tokens per task kind: a step asking more gets this much.
    output_tokens_by_kind: dict[str, int] = Field(
        default_factory=lambda: {
            "classify": 64,
            "extract": 1024,
            "tool_call": 1024,
            "summarize": 1024,
            "chat": 2048,
        }
    )

    @model_validator(mode="after")
    def _soft_below_hard(self) -> BudgetConfig:
        for scope in ("session", "agent", "tenant"):
            for unit, hard_name, soft_name in (
                ("USD", f"{scope}_budget_usd", f"{scope}_soft_budget_usd"),
                ("tokens", f"{scope}_budget_tokens", f"{scope}_soft_budget_tokens"),
            ):
                hard, soft = getattr(self, hard_name), getattr(self, soft_name)
                if hard is not None and soft is not None and soft > hard:
                    raise ValueError(
                        f"TIERFLEET_{soft_name.upper()} ({soft} {unit}) is above "
                        f"TIERFLEET_{hard_name.upper()} ({hard} {unit}): economy mode would "
                        "never begin before the hard stop"
                    )
        return self
