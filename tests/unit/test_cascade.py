import pytest

from policies.cascade import Verdict, judge, next_after
from policies.tiers import load_tier_table
from queues.settings import DEFAULT_TIER_TABLE

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
    ("tier", "accepted", "action", "to"),
    [
        ("cheap", True, "accept", "cheap"),
        ("cheap", False, "escalate", "mid"),
        ("mid", False, "escalate", "frontier"),
        ("frontier", False, "dead_letter", None),
        ("frontier", True, "accept", "frontier"),
    ],
)
def test_next_after(tier, accepted, action, to):
    step = next_after(TABLE, tier, Verdict(accepted, "because"))
    assert (step.action, step.tier) == (action, to)
    assert "because" in step.why
