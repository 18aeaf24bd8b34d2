"""Budget arithmetic: what a call reserves and what a session has left, in integer nano-dollars
so concurrent increments in Redis never drift."""

from __future__ import annotations

from dataclasses import dataclass

from policies.tiers import NANO


@dataclass(frozen=True)
class BudgetState:
    limit_nano: int | None  # None: no hard limit
    spent_nano: int
    reserved_nano: int

    @property
    def available_nano(self) -> int | None:
        if self.limit_nano is None:
            return None
        return self.limit_nano - self.spent_nano - self.reserved_nano

    def admits(self, amount_nano: int) -> bool:
        available = self.available_nano
        return available is None or amount_nano <= available

    def describe(self) -> str:
        limit = "unlimited" if self.limit_nano is None else f"${self.limit_nano / NANO:.6f}"
        return (
            f"limit {limit}, spent ${self.spent_nano / NANO:.6f}, "
            f"reserved ${self.reserved_nano / NANO:.6f}"
        )


def reservation_id(step_id: str, attempt: int, retries: int, cross_check: bool = False) -> str:
    """One id per paid call of a step: a redelivered call finds its own reservation."""
    return f"{step_id}:{attempt}:{retries}" + (":x" if cross_check else "")
