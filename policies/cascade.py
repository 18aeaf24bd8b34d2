"""Cascade acceptance: judge an answer on what a real system sees, then decide what becomes
of it: accept, ask a second opinion, escalate or dead-letter. The worker performs the
decision's effects (workers/outcomes.py); the routing benchmark replays it on recorded
answers (producers/bench/routing_replay.py); both go through ``decide``.

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

from policies.shadow import agree
from policies.text import choice_letter
from policies.tiers import TierTable
from queues.messages import PriorAnswer


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    why: str


@dataclass(frozen=True)
class Accept:
    """The step is answered with ``answer``: this call's, or the one it cross-checked."""

    answer: PriorAnswer
    why: str


@dataclass(frozen=True)
class CrossCheck:
    """The tier accepts on agreement: ``model`` answers too, and ``first`` is kept."""

    model: str
    first: PriorAnswer
    why: str


@dataclass(frozen=True)
class Escalate:
    """The answer is rejected; the step goes to ``tier``'s default model."""

    tier: str
    why: str


@dataclass(frozen=True)
class DeadLetter:
    """The top tier rejected the answer: nobody is left to ask."""

    why: str


@dataclass(frozen=True)
class Judge:
    """The tier accepts on a judge's word: ``model`` scores ``first``, which is kept."""

    model: str
    first: PriorAnswer
    why: str


Decision = Accept | CrossCheck | Judge | Escalate | DeadLetter


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


# An answer that did not end on its own is never accepted as complete.
UNFINISHED = {
    "length": "answer cut off at max_tokens",
    "filtered": "answer withheld by the provider's filter",
}


def accept_threshold(table: TierTable, tier: str, quality: float | None) -> float:
    """The confidence an answer at ``tier`` needs: the quality knob below the top tier when
    it is set, else the tier's own ``accept_min_confidence``."""
    if quality is None or tier == table.top.name:
        return table.tier(tier).accept_min_confidence
    return quality


def judge(
    answer: str,
    *,
    task_kind: str,
    schema: dict[str, Any] | None,
    confidence: float | None,
    min_confidence: float,
    finish: str = "stop",
) -> Verdict:
    if finish in UNFINISHED:
        return Verdict(False, UNFINISHED[finish])
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


def next_after(table: TierTable, this: PriorAnswer, verdict: Verdict) -> Decision:
    """Accept a passing answer, else the tier's escalation (the next tier up unless the
    table says where), else a dead letter."""
    if verdict.accepted:
        return Accept(this, verdict.why)
    upper = table.escalation_of(this.tier)
    if upper is None:
        return DeadLetter(f"top tier {this.tier} rejected: {verdict.why}")
    return Escalate(upper, f"{this.tier} rejected ({verdict.why}) -> {upper}")


def judged(
    table: TierTable, first: PriorAnswer, judge_model: str, score: float | None, needed: float
) -> Decision:
    """The judge's word on ``first``: accepted when its score clears ``needed``, else the
    tier's rejection (the next tier up, or a dead letter at the top)."""
    if score is not None and score >= needed:
        return Accept(first, f"{judge_model} scores it {score:.2f} >= {needed:.2f}")
    said = "no score" if score is None else f"{score:.2f} < {needed:.2f}"
    return next_after(table, first, Verdict(False, f"judge {judge_model} gave {said}"))


def decide(
    table: TierTable,
    this: PriorAnswer,
    verdict: Verdict,
    task_kind: str,
    first: PriorAnswer | None = None,
) -> Decision:
    """What becomes of ``this`` answer, judged ``verdict``. ``first`` is the answer it
    cross-checks, if it is a second opinion: that one is accepted only when both pass and
    agree; a disagreement rejects the tier's answer."""
    if first is not None:
        if verdict.accepted and agree(first.answer, this.answer, task_kind):
            return Accept(first, f"{this.model} agrees with {first.model}")
        if verdict.accepted:
            verdict = Verdict(False, f"{this.model} disagrees with {first.model}")
    elif verdict.accepted:
        spec = table.tier(this.tier)
        if spec.acceptance == "judge" and spec.judge:
            why = f"{this.tier} accepts on {spec.judge}'s word: {verdict.why}"
            return Judge(spec.judge, this, why)
        if cross := second_opinion(table, this.tier, this.model):
            why = f"{this.tier} accepts on agreement: {verdict.why}; {cross} answers too"
            return CrossCheck(cross, this, why)
    return next_after(table, this, verdict)
