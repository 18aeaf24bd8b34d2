"""Cascade acceptance: judge an answer on what a real system sees, then accept, escalate or
dead-letter.

The judge never sees a ground-truth label: it checks the answer's format (JSON schema when
the step gives one, task-kind format checks otherwise) and the provider's confidence where
one is reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import ValidationError
from jsonschema.validators import validator_for

from policies.text import choice_letter
from policies.tiers import TierTable


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    why: str


@dataclass(frozen=True)
class Next:
    """What happens to a judged answer: accept, escalate to ``tier``, or dead-letter."""

    action: str  # "accept" | "escalate" | "dead_letter"
    tier: str | None
    why: str


def _multiple_choice(answer: str) -> str | None:
    return None if choice_letter(answer) else "no single choice letter in the answer"


def _code(answer: str) -> str | None:
    return None if re.search(r"\bdef \w+\(|\bclass \w+", answer) else "no function definition"


# Format checks by task kind: provider-independent, cheap, and known before any label.
FORMAT_CHECKS: dict[str, Callable[[str], str | None]] = {
    "multiple_choice": _multiple_choice,
    "code": _code,
}


def check_schema(answer: str, schema: dict[str, Any]) -> str | None:
    """None when the answer is JSON that fits the schema; otherwise why not."""
    try:
        doc = json.loads(answer)
    except json.JSONDecodeError as exc:
        return f"answer is not JSON ({exc.msg} at {exc.pos})"
    try:
        validator_for(schema)(schema).validate(doc)
    except ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        return f"schema violation at {where}: {exc.message}"
    return None


def judge(
    answer: str,
    *,
    task_kind: str,
    schema: dict[str, Any] | None,
    confidence: float | None,
    min_confidence: float,
) -> Verdict:
    if not answer.strip():
        return Verdict(False, "empty answer")
    if schema is not None:
        problem = check_schema(answer, schema)
        if problem:
            return Verdict(False, problem)
    check = FORMAT_CHECKS.get(task_kind)
    problem = check(answer) if check else None
    if problem:
        return Verdict(False, problem)
    if confidence is not None and confidence < min_confidence:
        return Verdict(False, f"confidence {confidence:.2f} < {min_confidence:.2f}")
    shown = "n/a" if confidence is None else f"{confidence:.2f}"
    return Verdict(True, f"passed checks (confidence {shown})")


def second_opinion(table: TierTable, tier: str, answered_by: str) -> str | None:
    """The model whose answer must agree before ``tier`` accepts one (acceptance =
    "agreement"): the tier's cross-check model, or its default when the cross-check model
    gave the first answer. None when the tier accepts on its checks alone."""
    spec = table.tier(tier)
    if spec.acceptance != "agreement" or spec.cross_check is None:
        return None
    cross = spec.cross_check if spec.cross_check != answered_by else spec.model
    return None if cross == answered_by else cross


def next_after(table: TierTable, tier: str, verdict: Verdict) -> Next:
    if verdict.accepted:
        return Next("accept", tier, verdict.why)
    upper = table.next_tier(tier)
    if upper is None:
        return Next("dead_letter", None, f"top tier {tier} rejected: {verdict.why}")
    return Next("escalate", upper, f"{tier} rejected ({verdict.why}) -> {upper}")
