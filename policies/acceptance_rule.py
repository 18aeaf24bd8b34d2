"""A tier's acceptance rule as its table entry states it, checked: what lets an answer stand
("checks", "agreement" with a cross-check model, or a "judge" model's word) and where its
confidence comes from ("provider": log-probabilities or the learned acceptance check;
"self_report": the model's own word)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACCEPTANCE = ("checks", "agreement", "judge")
CONFIDENCE = ("provider", "self_report")


@dataclass(frozen=True)
class AcceptanceRule:
    acceptance: str = "checks"
    cross_check: str | None = None
    judge: str | None = None
    confidence: str = "provider"
    # Where a rejected answer goes: a tier ranked above (None: the next one up). Skipping a
    # tier pays when the one between is rarely right where this one was wrong.
    escalate_to: str | None = None


def acceptance_rule(tier: str, spec: dict[str, Any]) -> AcceptanceRule:
    acceptance = str(spec.get("acceptance", "checks"))
    if acceptance not in ACCEPTANCE:
        raise ValueError(f"tier {tier!r}: acceptance must be checks, agreement or judge")
    cross, judge = spec.get("cross_check"), spec.get("judge")
    if acceptance == "agreement" and not cross:
        raise ValueError(f"tier {tier!r}: acceptance = agreement needs cross_check = <model>")
    if acceptance == "judge" and not judge:
        raise ValueError(f"tier {tier!r}: acceptance = judge needs judge = <model>")
    confidence = str(spec.get("confidence", "provider"))
    if confidence not in CONFIDENCE:
        raise ValueError(f"tier {tier!r}: confidence must be provider or self_report")
    escalate_to = spec.get("escalate_to")
    return AcceptanceRule(
        acceptance,
        str(cross) if cross else None,
        str(judge) if judge else None,
        confidence,
        str(escalate_to) if escalate_to else None,
    )
