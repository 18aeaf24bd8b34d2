"""Metric labels with bounded cardinality: a free-text reason becomes one of a few classes,
and a label that takes the producers' own names (tenant, agent, workflow, task kind) keeps
at most so many values, the rest counted as "other". No step or session id is ever a label."""

from __future__ import annotations

import re

OTHER = "other"

# Why a step escalated or was dead-lettered, first match wins: the classes an operator acts
# on (a schema the cheap tier cannot follow, a provider down, a budget too small, bad input).
REASON_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("retries_exhausted", r"retries exhausted"),
        ("gate_closed", r"closed gate|circuit"),
        ("redelivered", r"delivered \d+ times"),
        ("malformed", r"malformed|unreadable|takes \d+ arguments|not sealed|seal|forged"),
        ("budget", r"budget"),
        ("over_context", r"holds \d+ tokens"),
        ("schema", r"schema|not JSON"),
        ("empty", r"empty answer"),
        ("truncated", r"cut off at max_tokens"),
        ("filtered", r"withheld by the provider"),
        ("format", r"choice letter|function definition"),
        ("confidence", r"confidence"),
        ("disagreement", r"disagrees"),
        ("top_tier_rejected", r"top tier .* rejected"),
        ("provider", r"provider|status \d{3}|timed? ?out|connection"),
    )
)


def reason_class(reason: str) -> str:
    """The class of a free-text reason (an escalation's or a dead letter's)."""
    for name, pattern in REASON_CLASSES:
        if pattern.search(reason):
            return name
    return OTHER


class LabelCap:
    """Keeps at most ``limit`` distinct values per label; a value past that is ``other``.
    The first values seen stay themselves for the life of the process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}

    def __call__(self, label: str, value: str | None) -> str:
        value = value or "none"
        seen = self._seen.setdefault(label, set())
        if value in seen:
            return value
        if len(seen) >= self.limit:
            return OTHER
        seen.add(value)
        return value
