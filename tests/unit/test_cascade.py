from dataclasses import replace

import pytest

from policies.cascade import (
    Accept,
    CrossCheck,
    DeadLetter,
    Escalate,
    Verdict,
    decide,
    judge,
    next_after,
)
from policies.tables import DEFAULT_TIER_TABLE
from policies.tiers import load_tier_table
from queues.messages import PriorAnswer

TABLE = load_tier_table(DEFAULT_TIER_TABLE)
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.mark.parametrize(
    ("answer", "kind", "schema", "confidence", "accepted", "why"),
    [
        ('{"n": 3}', "extract", SCHEMA, None, True, "passed"),
        ('{"n": "3"}', "extract", SCHEMA, None, False, "schema violation at n"),
        ("{}", "extract", SCHEMA, None, False, "'n' is a required property"),
        ('{"n": 3', "extract", SCHEMA, 0.99, False, "not JSON"),
        ("", "chat", None, 0.99, False, "empty answer"),
        ("fine", "chat", None, 0.59, False, "confidence 0.59 < 0.60"),
        ("fine", "chat", None, 0.60, True, "passed"),
        ("fine", "chat", None, None, True, "n/a"),
        ("B", "multiple_choice", None, None, True, "passed"),
        ("The answer is C.", "multiple_choice", None, None, True, "passed"),
        ("I am not sure", "multiple_choice", None, None, False, "choice letter"),
        ("def f(x):\n    return x", "code", None, None, True, "passed"),
        ("Use a loop.", "code", None, None, False, "function definition"),
    ],
)
def test_judge(answer, kind, schema, confidence, accepted, why):
    verdict = judge(
        answer, task_kind=kind, schema=schema, confidence=confidence, min_confidence=0.6
    )
    assert verdict.accepted is accepted
    assert why in verdict.why


@pytest.mark.parametrize(
    ("tier", "accepted", "kind", "to"),
    [
        ("cheap", True, Accept, "cheap"),
        ("cheap", False, Escalate, "mid"),
        ("mid", False, Escalate, "frontier"),
        ("frontier", False, DeadLetter, None),
        ("frontier", True, Accept, "frontier"),
    ],
)
def test_next_after(tier, accepted, kind, to):
    this = PriorAnswer(answer="B", model="m", tier=tier)
    step = next_after(TABLE, this, Verdict(accepted, "because"))
    assert isinstance(step, kind)
    if isinstance(step, Accept):
        assert step.answer == this
        assert step.answer.tier == to
    elif isinstance(step, Escalate):
        assert step.tier == to
    assert "because" in step.why


AGREEMENT = replace(
    TABLE,
    tiers=tuple(
        replace(t, acceptance="agreement", cross_check="other") if t.name == "cheap" else t
        for t in TABLE.tiers
    ),
)


def test_an_agreement_tier_asks_a_second_opinion_and_accepts_the_first_answer_on_agreement():
    model = AGREEMENT.tier("cheap").model
    first = PriorAnswer(answer="The answer is B.", model=model, tier="cheap")
    asked = decide(AGREEMENT, first, Verdict(True, "ok"), "multiple_choice")
    assert isinstance(asked, CrossCheck)
    assert (asked.model, asked.first) == ("other", first)
    second = PriorAnswer(answer="B", model="other", tier="cheap")
    agreed = decide(AGREEMENT, second, Verdict(True, "ok"), "multiple_choice", first)
    assert isinstance(agreed, Accept)
    assert agreed.answer == first
    assert "agrees" in agreed.why


def test_a_disagreeing_or_failing_second_opinion_escalates():
    model = AGREEMENT.tier("cheap").model
    first = PriorAnswer(answer="B", model=model, tier="cheap")
    other = PriorAnswer(answer="C", model="other", tier="cheap")
    disagreed = decide(AGREEMENT, other, Verdict(True, "ok"), "multiple_choice", first)
    assert isinstance(disagreed, Escalate)
    assert disagreed.tier == "mid"
    assert "disagrees" in disagreed.why
    failed = decide(AGREEMENT, other, Verdict(False, "no letter"), "multiple_choice", first)
    assert isinstance(failed, Escalate)
    assert "no letter" in failed.why


def test_the_quality_knob_sets_the_bar_below_the_top_tier_only():
    from policies.cascade import accept_threshold
    from policies.tables import DEFAULT_TIER_TABLE
    from policies.tiers import load_tier_table

    table = load_tier_table(DEFAULT_TIER_TABLE)
    assert accept_threshold(table, "cheap", None) == table.tier("cheap").accept_min_confidence
    assert accept_threshold(table, "cheap", 0.9) == accept_threshold(table, "mid", 0.9) == 0.9
    assert accept_threshold(table, "frontier", 0.9) == table.top.accept_min_confidence
