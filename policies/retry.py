"""Backoff for transient failures: exponential with full jitter, capped."""

from __future__ import annotations

import random


def backoff_s(
    base_s: float, retries: int, *, cap_s: float = 60.0, rng: random.Random | None = None
) -> float:
    ceiling = min(cap_s, base_s * (2**retries))
    return (rng or random).uniform(ceiling / 2, ceiling)
