"""The judge acceptance policy: a passing answer goes to the judge model; its score decides."""

import pytest

from policies.cascade import Accept, DeadLetter, Escalate, Judge, Verdict, decide, judged
from policies.judge import judge_messages, judge_score
from policies.tables import DEFAULT_TIER_TABLE
from policies.tiers import load_tier_table, parse_tier_table
from queues.messages import PriorAnswer
from queues.step import ChatMessage

TABLE = load_tier_table(DEFAULT_TIER_TABLE)


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("0.9", 0.9),
        ("Probability: .35", 0.35),
        ("85%", 0.85),
        ("1", 1.0),
        ("7", None),
        ("no", None),
    ],
)
def test_the_judges_reply_is_read_as_a_probability(reply, score):
    assert judge_score(reply) == (pytest.approx(score) if score is not None else None)


def test_the_judge_sees_the_request_and_the_answer():
    request = (ChatMessage(role="user", content="Refund or rebook?"),)
    system, user = judge_messages(request, "Rebook.")
    assert "one number between 0 and 1" in system.content
    assert "Refund or rebook?" in user.content and "Rebook." in user.content


def judging_table():
    import tomllib

    data = tomllib.loads(DEFAULT_TIER_TABLE.read_text())
    data["tiers"]["mid"].update(acceptance="judge", judge="sim/gpt-4o-mini")
    return parse_tier_table(data)


def test_a_tier_that_accepts_on_a_judges_word_asks_it_and_keeps_the_answer():
    table = judging_table()
    this = PriorAnswer(answer="Rebook.", model="sim/claude-3-5-haiku", tier="mid")
    decision = decide(table, this, Verdict(True, "passed checks"), "chat")
    assert isinstance(decision, Judge) and decision.model == "sim/gpt-4o-mini"
    assert decision.first == this
    assert isinstance(judged(table, this, "sim/gpt-4o-mini", 0.9, 0.7), Accept)
    low = judged(table, this, "sim/gpt-4o-mini", 0.2, 0.7)
    assert isinstance(low, Escalate) and low.tier == "frontier" and "0.20 < 0.70" in low.why
    assert isinstance(judged(table, this, "sim/gpt-4o-mini", None, 0.7), Escalate)
    top = PriorAnswer(answer="x", model="sim/gpt-4o", tier="frontier")
    assert isinstance(judged(table, top, "sim/gpt-4o-mini", 0.1, 0.5), DeadLetter)


def test_a_judge_must_be_named_and_in_the_table():
    import tomllib

    data = tomllib.loads(DEFAULT_TIER_TABLE.read_text())
    data["tiers"]["mid"].update(acceptance="judge")
    with pytest.raises(ValueError, match="needs judge"):
        parse_tier_table(data)
    data["tiers"]["mid"]["judge"] = "nobody"
    with pytest.raises(ValueError, match="not in"):
        parse_tier_table(data)
