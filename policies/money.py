"""Money as integer nano-dollars: budgets and the ledger add without float drift."""

import math

NANO = 1_000_000_000


def to_nano_up(usd: float) -> int:
    """Dollars to integer nano-dollars, rounded up (reservations never under-reserve)."""
    return math.ceil(usd * NANO - 1e-6)


def to_nano(usd: float) -> int:
    return round(usd * NANO)
