import csv
from pathlib import Path

import pytest

from policies.pricing import Price
from policies.tiers import ModelSpec
from workers.errors import PermanentError
from workers.ml.tokenizer import BpeCounter
from workers.ports import CompletionRequest
from workers.providers.replay import (
    ROUTELLM_RESPONSE,
    ReplayProvider,
    read_routellm,
    read_routerbench,
)
from workers.testing import step

MODELS = ["gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat"]


def write_csv(path: Path) -> None:
    header = [
        "",
        "sample_id",
        "prompt",
        "eval_name",
        *MODELS,
        *[m + "|model_response" for m in MODELS],
        *[m + "|total_cost" for m in MODELS],
        "oracle_model_to_route_to",
    ]
    rows = [
        [
            "0",
            "q1",
            "['Pick A or B. Answer:']",
            "arc-challenge",
            "1.0",
            "0.0",
            "['A']",
            "['B\\n']",
            "0.003",
            "0.0001",
            "mixtral",
        ],
        [
            "1",
            "q2",
            "['Another?']",
            "arc-challenge",
            "",
            "1.0",
            "['A']",
            "['A']",
            "0.003",
            "0.0001",
            "x",
        ],
    ]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def request(sample: str, model: str) -> CompletionRequest:
    s = step(labels={"replay_id": sample}, task_kind="multiple_choice")
    spec = ModelSpec(model, "replay", Price(1, 1, 1, 1))
    return CompletionRequest.for_step(s, spec, s.messages)


def test_reads_rows_and_drops_empty_scores(tmp_path):
    write_csv(tmp_path / "x_train.csv")
    rows = list(read_routerbench(tmp_path))
    assert [r.sample_id for r in rows] == ["q1"]
    assert rows[0].prompt == "Pick A or B. Answer:"
    assert rows[0].outcomes["mistralai/mixtral-8x7b-chat"].response == "B\n"


def test_returns_recorded_response_correctness_and_cost(tmp_path):
    write_csv(tmp_path / "x.csv")
    provider = ReplayProvider(tmp_path / "x.csv", BpeCounter())
    big, small = provider.complete([request("q1", MODELS[0]), request("q1", MODELS[1])])
    assert (big.text, big.correct, big.billed_usd) == ("A", True, 0.003)
    assert (small.text, small.correct, small.billed_usd) == ("B\n", False, 0.0001)
    assert not big.simulated and big.confidence is None


def test_unknown_prompt_or_model_is_permanent(tmp_path):
    write_csv(tmp_path / "x.csv")
    provider = ReplayProvider(tmp_path / "x.csv", BpeCounter())
    with pytest.raises(PermanentError, match="replay_id='nope'"):
        provider.complete([request("nope", MODELS[0])])
    with pytest.raises(PermanentError, match="no model"):
        provider.complete([request("q1", "claude-9")])


def test_routellm_files_drop_contaminated_prompts_and_price_each_call(tmp_path):
    (tmp_path / "mmlu_x.csv").write_text(
        'prompt,small,big\n"Q one? Answer:",True,True\n"Q two? Answer:",False,True\n'
    )
    (tmp_path / "contaminated_prompts.jsonl").write_text(
        '{"train_prompt": "elsewhere", "eval_prompt": "Q two? Answer:"}\n'
    )
    prices = {"small": (1.0, 2.0), "big": (10.0, 30.0)}
    [row] = list(read_routellm(tmp_path, prices, BpeCounter()))
    tokens = BpeCounter().count_many(["Q one? Answer:"])[0]
    assert row.eval_name == "mmlu_x" and row.outcomes["small"].correct
    assert row.outcomes["big"].cost_usd == pytest.approx((tokens * 10 + 30) / 1e6)
    assert row.outcomes["small"].response == ROUTELLM_RESPONSE
