"""Backoff for transient failures: exponential with full jitter, capped."""

from __future__ import annotations

import random


def backoff_s(
    base_s: float, retries: int, *, cap_s: float = 60.0, rng: random.Random | None = None
) -> float:
    ceiling = min(cap_s, base_s * (2**retries))
    return (rng or random).uniform(ceiling / 2, ceiling)


def clamp_delay(seconds: float | None, ceiling_s: float) -> float | None:
    """A wait that is safe to schedule: None stays None; NaN and negatives become 0; inf and
    anything past ``ceiling_s`` become ``ceiling_s``. (A countdown past the broker's
    visibility timeout is redelivered before it is due, and a huge one overflows.)"""
    if seconds is None:
        return None
    if seconds != seconds or seconds < 0:  # NaN compares unequal to itself
        return 0.0
    return min(float(seconds), ceiling_s)
