"""Acceptance signals real providers give: an answer cut off or filtered is never accepted
as complete, and a schema goes strict only where strict mode can take it unchanged."""

import pytest

from policies.cascade import judge
from policies.metric_labels import reason_class
from policies.strict_schema import strict_allowed

CLOSED = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["refund", "rebook"]},
        "legs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"from": {"type": "string"}},
                "required": ["from"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["action", "legs"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("finish", ["length", "filtered"])
def test_an_unfinished_answer_is_rejected_whatever_else_it_passes(finish):
    verdict = judge(
        "fine", task_kind="chat", schema=None, confidence=0.99, min_confidence=0.0, finish=finish
    )
    assert not verdict.accepted and reason_class(verdict.why) in ("truncated", "filtered")
    assert judge("fine", task_kind="chat", schema=None, confidence=0.99, min_confidence=0.0)


def test_a_closed_fully_required_schema_goes_strict():
    assert strict_allowed(CLOSED)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.pop("additionalProperties"),  # open at the root
        lambda s: s["required"].remove("legs"),  # an optional field
        lambda s: s["properties"]["legs"]["items"].pop("additionalProperties"),  # open inside
        lambda s: s.update(patternProperties={"^x": {"type": "string"}}),  # a keyword it lacks
        lambda s: s.update(type="array"),  # not an object at the root
    ],
)
def test_a_schema_strict_mode_cannot_take_unchanged_is_sent_without_strict(change):
    import copy

    schema = copy.deepcopy(CLOSED)
    change(schema)
    assert not strict_allowed(schema)
