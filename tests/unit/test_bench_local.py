"""The local benchmark's pure parts: prompts capped to the model, the one-tier table it
runs the fleet with, and the accuracy, calibration and cascade figures."""

import pytest

from policies.tables import TABLES
from policies.tiers import load_tier_table
from producers.bench.local import bench_table, local_model
from producers.bench.local_accuracy import (
    McItem,
    Scored,
    auroc,
    cascade,
    choose_threshold,
    ece,
    gold_letter,
)
from producers.bench.local_prompts import capped
from queues.step import ChatMessage
from workers.providers.replay import Recorded, ReplayRow


def words(messages) -> int:
    return sum(len(m.text().split()) for m in messages)


def msg(role: str, text: str, **extra) -> ChatMessage:
    return ChatMessage(role=role, content=text, **extra)


def test_a_prompt_loses_its_oldest_turns_first_then_the_system_prompts_tail():
    system = msg("system", "policy " * 50)
    turns = [msg("user", "a " * 20), msg("assistant", "b " * 20), msg("user", "c " * 20)]
    assert capped([system, *turns], 200, words) == (system, *turns)  # it fits
    cut = capped([system, *turns], 80, words)
    assert cut[1:] == (turns[2],) and cut[0].role == "system" and words(cut) <= 80
    assert words(cut[:1]) > 40  # the system prompt keeps what fits
    # A tool result never starts the kept history without the call it answers.
    call = msg("assistant", "", tool_calls=[{"id": "1", "function": {"name": "f"}}])
    tool = msg("tool", "r " * 30, tool_call_id="1")
    cut = capped([system, msg("user", "u " * 30), call, tool, msg("user", "q")], 60, words)
    assert [m.role for m in cut] == ["system", "user"]


def test_the_fleet_runs_the_local_model_alone_at_the_batch_size_measured(tmp_path):
    spec, entry = local_model(TABLES / "local.toml")
    table = load_tier_table(bench_table(spec, entry, 16, tmp_path))
    assert table.names == ["local"] and table.flush_sizes == {"local": 16}
    assert table.model_of("local").local == spec.local
    assert table.tier("local").accept_min_confidence == 0.0


def row(gold_from: dict[str, tuple[str, bool]]) -> ReplayRow:
    return ReplayRow(
        "s", "q", "arc-challenge", {m: Recorded(r, ok, 0.01) for m, (r, ok) in gold_from.items()}
    )


def test_the_gold_choice_is_what_right_answers_agree_on_and_no_wrong_one_gives():
    assert gold_letter(row({"a": ("B", True), "b": ("B) x", True), "c": ("C", False)})) == "B"
    assert gold_letter(row({"a": ("B", True), "b": ("C", True)})) is None
    assert gold_letter(row({"a": ("def f(): pass", True)})) is None


def scored(confidence: float, correct: bool, frontier: bool = True) -> Scored:
    return Scored(McItem("q", "arc", "A", frontier, 0.01), correct, confidence, 0.0001)


def test_calibration_and_the_cascade_over_local_answers():
    answers = [scored(0.9, True), scored(0.8, True), scored(0.3, False), scored(0.2, False)]
    assert auroc(answers) == 1.0 and auroc(answers[:2]) is None
    assert auroc([scored(0.5, True), scored(0.5, False)]) == 0.5
    assert ece([scored(0.95, True)]) == pytest.approx(0.05)
    everything_local = cascade(answers, 0.0)
    assert everything_local["accuracy"] == 0.5 and everything_local["local_share"] == 1.0
    confident_only = cascade(answers, 0.5)
    assert confident_only["accuracy"] == 1.0 and confident_only["local_share"] == 0.5
    assert confident_only["usd_per_prompt"] == pytest.approx(0.0001 + 0.005)
    assert choose_threshold(answers) == 0.35  # the lowest that keeps the frontier's accuracy
