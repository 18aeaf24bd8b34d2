"""Acceptance on agreement: a tier accepts an answer only when a second model agrees."""

from pathlib import Path

import pytest

from policies.cascade import second_opinion
from policies.tiers import load_tier_table
from queues.messages import StepStatus
from queues.topology import Stage
from workers.infer import handle_batch
from workers.ports import Completion
from workers.testing import FunctionProvider, envelope, infer_hops, make_runtime

TABLE = """
version = "test"
[tiers.cheap]
rank = 0
models = ["small-a", "small-b"]
acceptance = "agreement"
cross_check = "small-b"
[tiers.top]
rank = 1
model = "big"
""" + "".join(
    f'[models."{m}"]\nprovider = "replay"\ninput_per_mtok = 1\noutput_per_mtok = 1\n'
    for m in ("small-a", "small-b", "big")
)


@pytest.fixture
def table_path(tmp_path) -> Path:
    path = tmp_path / "tiers.toml"
    path.write_text(TABLE)
    return path


def answering(answers: dict[str, str]) -> FunctionProvider:
    return FunctionProvider(lambda r: Completion(answers[r.model.name], 100, 5, correct=True))


def run(rt, bus, env):
    """Feed every infer hop back in until the step is finalized."""
    handle_batch(infer_hops(env), rt)
    while not bus.finalized:
        stage, env, _ = bus.sent.pop(0)
        assert stage is Stage.infer
        handle_batch(infer_hops(env), rt)
    return bus.finalized[-1]


def test_the_second_opinion_is_the_cross_check_model_or_the_default(table_path):
    table = load_tier_table(table_path)
    assert second_opinion(table, "cheap", "small-a") == "small-b"
    assert second_opinion(table, "cheap", "small-b") == "small-a"
    assert second_opinion(table, "top", "big") is None


def test_agreeing_answers_are_accepted_with_both_calls_on_the_bill(table_path):
    rt, bus, _ = make_runtime(
        answering({"small-a": "B", "small-b": "The answer is B", "big": "C"}),
        tier_table=table_path,
    )
    env, outcome = run(rt, bus, envelope(tier="cheap", task_kind="multiple_choice"))
    assert (outcome.status, outcome.model, outcome.answer) == (StepStatus.ok, "small-a", "B")
    assert [c.model for c in env.costs] == ["small-a", "small-b"] and env.attempt == 0


def test_disagreement_escalates_to_the_next_tier(table_path):
    rt, bus, _ = make_runtime(
        answering({"small-a": "B", "small-b": "D", "big": "C"}), tier_table=table_path
    )
    env, outcome = run(rt, bus, envelope(tier="cheap", task_kind="multiple_choice"))
    assert (outcome.model, outcome.answer) == ("big", "C")
    assert [c.model for c in env.costs] == ["small-a", "small-b", "big"]
    assert any("disagrees" in d.why for d in env.decisions)


def test_a_disagreement_goes_where_the_tier_says_skipping_the_tier_between(tmp_path):
    """escalate_to = "top": a disagreement at the cheap tier is answered by the top tier,
    never by the mid tier between them; the mid tier's own rejections still climb one."""
    skipping = TABLE.replace(
        'cross_check = "small-b"', 'cross_check = "small-b"\nescalate_to = "top"'
    )
    skipping = skipping.replace(
        "[tiers.top]\nrank = 1", '[tiers.mid]\nrank = 1\nmodel = "middle"\n[tiers.top]\nrank = 2'
    )
    skipping += '[models."middle"]\nprovider = "replay"\ninput_per_mtok = 1\noutput_per_mtok = 1\n'
    path = tmp_path / "tiers.toml"
    path.write_text(skipping)
    table = load_tier_table(path)
    assert (table.escalation_of("cheap"), table.escalation_of("mid")) == ("top", "top")
    rt, bus, _ = make_runtime(
        answering({"small-a": "B", "small-b": "D", "middle": "B", "big": "C"}), tier_table=path
    )
    env, outcome = run(rt, bus, envelope(tier="cheap", task_kind="multiple_choice"))
    assert (outcome.model, outcome.answer) == ("big", "C")
    assert [c.model for c in env.costs] == ["small-a", "small-b", "big"]
    assert any("-> top" in d.why for d in env.decisions)
