"""Budget arithmetic, per scope (a session, an agent): hard and soft limits in dollars
(integer nano-dollars, so concurrent increments in Redis never drift) and in tokens.

A hard limit refuses the call that would cross it (atomically, in the budget store). A soft
limit does not refuse anything: a step that finds its scope past it runs in economy mode
(a lower tier cap, tighter compression, a smaller max_tokens).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from policies.money import NANO


@dataclass(frozen=True)
class BudgetState:
    limit_nano: int | None  # hard limit; None: none
    spent_nano: int
    reserved_nano: int
    limit_tokens: int | None = None
    spent_tokens: int = 0
    reserved_tokens: int = 0
    soft_nano: int | None = None
    soft_tokens: int | None = None
    scope: str = "session"
    overshoot_nano: int = 0  # what settled calls cost beyond their reservations

    @property
    def available_nano(self) -> int | None:
        if self.limit_nano is None:
            return None
        return self.limit_nano - self.spent_nano - self.reserved_nano

    def admits(self, amount_nano: int, tokens: int = 0) -> bool:
        dollars = self.limit_nano is None or (
            self.spent_nano + self.reserved_nano + amount_nano <= self.limit_nano
        )
        counted = self.limit_tokens is None or (
            self.spent_tokens + self.reserved_tokens + tokens <= self.limit_tokens
        )
        return dollars and counted

    def past_soft(self) -> str | None:
        """Why this scope is past its soft limit (spent and in-flight count), or None."""
        if self.soft_nano is not None and self.spent_nano + self.reserved_nano >= self.soft_nano:
            used = (self.spent_nano + self.reserved_nano) / NANO
            return f"{self.scope} ${used:.6f} >= soft ${self.soft_nano / NANO:.6f}"
        if (
            self.soft_tokens is not None
            and self.spent_tokens + self.reserved_tokens >= self.soft_tokens
        ):
            used_tokens = self.spent_tokens + self.reserved_tokens
            return f"{self.scope} {used_tokens} tokens >= soft {self.soft_tokens}"
        return None

    def describe(self) -> str:
        limit = "unlimited" if self.limit_nano is None else f"${self.limit_nano / NANO:.6f}"
        text = (
            f"{self.scope}: limit {limit}, spent ${self.spent_nano / NANO:.6f}, "
            f"reserved ${self.reserved_nano / NANO:.6f}"
        )
        if self.limit_tokens is not None:
            text += (
                f"; tokens limit {self.limit_tokens}, spent {self.spent_tokens}, "
                f"reserved {self.reserved_tokens}"
            )
        return text


def economy_reason(states: Sequence[BudgetState]) -> str | None:
    """Why a step must run in economy mode: the scopes past their soft limits, or None."""
    reasons = [r for r in (s.past_soft() for s in states) if r]
    return "; ".join(reasons) or None


def output_cap(
    requested: int, task_kind: str, caps: Mapping[str, int], economy_factor: float | None
) -> int:
    """max_tokens for a call: what the step asks, capped per task kind (a classification
    needs a few tokens, not the default 512), shrunk in economy mode. Reservations are made
    on this cap, so a tight cap also stops the hard limit refusing calls it could afford."""
    cap = min(requested, caps.get(task_kind, requested))
    if economy_factor is not None:
        cap = int(cap * economy_factor)
    return max(1, cap)


@dataclass(frozen=True)
class Settlement:
    """A call's reservation turned into spend: what was held, what it cost."""

    settled: bool  # False: settled before (a redelivery), nothing changed
    reserved_nano: int
    actual_nano: int

    @property
    def overshoot_nano(self) -> int:
        """What the call cost beyond its reservation: spent past the hard limit's guarantee,
        so it is reported (ledger, report), never hidden."""
        return max(0, self.actual_nano - self.reserved_nano) if self.settled else 0


@dataclass(frozen=True)
class BudgetAdvice:
    """Per-session limits read off observed spend: soft at the P95 (the step past it runs in
    economy mode), hard at the P99 with headroom (a session past it is a runaway)."""

    sessions: int
    p50_usd: float
    p95_usd: float
    p99_usd: float
    max_usd: float
    soft_usd: float
    hard_usd: float


def recommend_budgets(
    session_spend: Sequence[float], headroom: float = 1.25
) -> BudgetAdvice | None:
    """None without sessions. Fewer than 100 make a P99 that is just the largest few."""
    ordered = sorted(session_spend)
    if not ordered:
        return None

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    return BudgetAdvice(
        sessions=len(ordered),
        p50_usd=at(0.5),
        p95_usd=at(0.95),
        p99_usd=at(0.99),
        max_usd=ordered[-1],
        soft_usd=at(0.95),
        hard_usd=at(0.99) * headroom,
    )
