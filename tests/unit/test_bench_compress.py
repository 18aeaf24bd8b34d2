"""``bench compress`` on small recorded sessions and LEval tasks written here: the figures
count what the compressor really dropped, and the text compressor it is given is the one
that runs."""

import json

import pytest

from policies.compression import CompressionPlan
from producers.bench.compress import (
    bench_leval,
    bench_tau,
    replay_session,
    rolling_window,
)
from producers.recorded import TauSession, session_split, tau_bench_sessions
from queues.step import ChatMessage
from workers.ml.tokenizer import BpeCounter

SYSTEM = {"role": "system", "content": "You are an airline agent. " * 40}


def tool_turn(n: int, payload: object) -> list[dict[str, object]]:
    call = {"id": f"c{n}", "function": {"name": "get_reservation", "arguments": "{}"}}
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": f"c{n}", "content": json.dumps(payload)},
    ]


def recorded_session() -> list[dict[str, object]]:
    """A reservation looked up early, then chatter, then the agent quoting the code."""
    records = [{"reservation_id": f"ZX{n:04d}", "status": "filler " * 30} for n in range(60)]
    traj: list[dict[str, object]] = [SYSTEM, {"role": "user", "content": "hi, my booking?"}]
    traj += tool_turn(0, {"reservation_id": "QK7731", "flights": records})
    for n in range(1, 12):
        traj += [
            {"role": "assistant", "content": f"Anything else? {'words ' * 50}"},
            {"role": "user", "content": f"question {n} {'talk ' * 50}"},
        ]
    traj.append({"role": "assistant", "content": "Your reservation QK7731 is confirmed."})
    return traj


@pytest.fixture
def workload(tmp_path):
    path = tmp_path / "sessions.json"
    path.write_text(json.dumps([{"task_id": 3, "traj": recorded_session()}]))
    return path


def test_tau_figures_cover_prefix_facts_and_the_baseline(workload):
    figures = bench_tau(workload, None, CompressionPlan(), per_call=True, split="all")
    assert figures["sessions"] == 1 and figures["calls"] == len(figures["per_call"]) == 13
    assert figures["prefix_stable_share"] == 1.0
    assert figures["used_facts"] >= 1  # QK7731: in a tool result and in the last answer
    assert figures["used_facts_kept"] == 1.0
    assert 0 < figures["volatile_token_reduction"] < 1
    assert figures["input_tokens_after"] < figures["input_tokens_before"]
    rolling = figures["baseline_rolling_window"]
    assert rolling["used_facts_kept"] == 0.0  # the lookup left the last 6 messages long ago
    assert [s["session"] for s in figures["per_session"]] == ["tau-3-0"]


def test_tasks_are_tuned_on_one_half_and_reported_on_the_other():
    sessions = [TauSession(f"tau-{task}-{trial}", ()) for task in range(40) for trial in range(4)]
    tune, report = session_split(sessions, "tune"), session_split(sessions, "report")
    assert len(tune) + len(report) == len(sessions) == len(session_split(sessions, "all"))
    assert tune and report and not {s.session_id for s in tune} & {s.session_id for s in report}
    # Every trial of a task falls on the same side.
    tune_tasks = {s.session_id.rsplit("-", 1)[0] for s in tune}
    assert not tune_tasks & {s.session_id.rsplit("-", 1)[0] for s in report}
    with pytest.raises(ValueError, match="unknown split"):
        session_split(sessions, "dev")


def test_a_squeeze_that_drops_the_history_keeps_no_facts():
    messages = tuple(ChatMessage.model_validate(m) for m in recorded_session())
    session = TauSession("s", messages)
    calls = replay_session(session, lambda prompt: prompt[:1], BpeCounter())
    last = calls[-1]
    assert last.facts_used >= 1 and last.facts_kept == 0
    assert last.volatile_after == 0 < last.volatile_before
    assert last.prefix_stable


def test_the_rolling_window_keeps_system_and_last_six():
    messages = tuple(ChatMessage.model_validate(m) for m in recorded_session())
    kept = rolling_window(messages)
    assert kept[0] == messages[0] and kept[1:] == messages[-6:]


@pytest.fixture
def leval(tmp_path):
    def record(document: str, answer: str) -> str:
        return json.dumps({"input": document, "instructions": ["Who signed?"], "outputs": [answer]})

    first = "The lease was signed by Marguerite Okafor in Lagos. " + "Boilerplate clause. " * 200
    second = "Nothing relevant here. " * 200 + "Signed by Tobias Lindqvist."
    (tmp_path / "legal.jsonl").write_text(
        "\n".join([record(first, "Marguerite Okafor"), record(second, "Tobias Lindqvist")])
    )
    return tmp_path


def test_leval_uses_the_text_compressor_given_and_the_documents_asked_for(leval):
    seen = []

    def first_sentence(text: str, query: str, budget: int) -> str:
        seen.append((query, budget))
        return text.split(". ")[0] + "."

    figures = bench_leval(leval, CompressionPlan(), first_sentence, documents=1)
    task = figures["tasks"]["legal"]
    assert figures["documents_per_task"] == 1 and len(seen) == 1
    assert seen[0][0] == "Who signed?" and seen[0][1] > 0
    assert task["answer_tokens"] == 2 and task["answer_tokens_kept"] == 1.0
    assert task["ratio"] > 20


def test_leval_counts_answer_words_the_compressor_lost(leval):
    figures = bench_leval(leval, CompressionPlan(), lambda text, query, budget: "nothing")
    task = figures["tasks"]["legal"]
    assert task["answer_tokens"] == 4 and task["answer_tokens_kept"] == 0.0
    assert figures["answer_tokens_kept"] == 0.0


def test_the_history_budget_is_chosen_on_the_tuning_half(tmp_path):
    from producers.bench.compress_tuning import tune_history_budget

    path = tmp_path / "sessions.json"
    path.write_text(json.dumps([{"task_id": t, "traj": recorded_session()} for t in range(8)]))
    figures = tune_history_budget(path, CompressionPlan(), budgets=(0, 400, 100_000), floor=0.99)
    assert figures["split"] == "tune" and len(figures["curve"]) == 3
    calls = {row["calls"] for row in figures["curve"]}
    assert calls == {13 * len(session_split(tau_bench_sessions(path), "tune"))}
    cuts = [row["volatile_token_reduction"] for row in figures["curve"]]
    assert cuts[0] >= cuts[1] >= cuts[2]  # a smaller budget cuts more
    held = [r for r in figures["curve"] if r["used_facts_kept"] >= 0.99]
    best = max(held, key=lambda r: r["volatile_token_reduction"])
    assert figures["chosen_history_budget_tokens"] == best["history_budget_tokens"]
