"""The replay provider: answers with what a real model answered, from RouterBench-format CSVs.

For a prompt and a model it returns the recorded response, its correctness and the dollar
cost RouterBench recorded (billed as is). Rows with an empty score are dropped, as
RouterBench's own loaders do.
"""

from __future__ import annotations

import ast
import csv
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from policies.tokens import TokenCounter, prompt_tokens
from workers.errors import PermanentError
from workers.lazy import Lazy
from workers.ports import Completion, CompletionRequest

csv.field_size_limit(sys.maxsize)

RESPONSE, COST = "|model_response", "|total_cost"


@dataclass(frozen=True)
class Recorded:
    response: str
    correct: bool
    cost_usd: float


@dataclass(frozen=True)
class ReplayRow:
    sample_id: str
    prompt: str
    eval_name: str
    outcomes: dict[str, Recorded]


def csv_files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no RouterBench CSV files at {path}")
    return files


def unlist(text: str) -> str:
    """RouterBench stores prompts and responses as Python list literals: join their items."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value)


def read_routerbench(path: Path) -> Iterator[ReplayRow]:
    for file in csv_files(path):
        with file.open(newline="") as fh:
            reader = csv.DictReader(fh)
            models = [c[: -len(RESPONSE)] for c in reader.fieldnames or [] if c.endswith(RESPONSE)]
            for row in reader:
                if any(row.get(m, "") == "" for m in models):
                    continue
                outcomes = {
                    m: Recorded(
                        unlist(row[m + RESPONSE]), float(row[m]) >= 1.0, float(row[m + COST])
                    )
                    for m in models
                }
                yield ReplayRow(row["sample_id"], unlist(row["prompt"]), row["eval_name"], outcomes)


# RouteLLM's MMLU files record correctness only: the answer is one choice letter, and the cost
# is what that call costs at the model's price (the prompt in, one token out).
ROUTELLM_RESPONSE = "(response not recorded)"
CONTAMINATED = "contaminated_prompts.jsonl"


def read_routellm(
    path: Path, prices: dict[str, tuple[float, float]], counter: TokenCounter
) -> Iterator[ReplayRow]:
    """RouteLLM MMLU outcome CSVs (``prompt,<model>,<model>`` with True/False), without the
    prompts its ``contaminated_prompts.jsonl`` lists. ``prices``: model -> USD per million
    input and output tokens."""
    folder = path if path.is_dir() else path.parent
    excluded: set[str] = set()
    if (folder / CONTAMINATED).exists():
        for line in (folder / CONTAMINATED).read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                excluded |= {
                    str(record.get("train_prompt", "")),
                    str(record.get("eval_prompt", "")),
                }
    for file in csv_files(path):
        with file.open(newline="") as fh:
            reader = csv.DictReader(fh)
            models = [c for c in reader.fieldnames or [] if c != "prompt"]
            for i, row in enumerate(reader):
                prompt = row["prompt"]
                if prompt in excluded:
                    continue
                tokens = counter.count_many([prompt])[0]
                outcomes = {}
                for m in models:
                    per_in, per_out = prices[m]
                    cost = (tokens * per_in + per_out) / 1_000_000
                    outcomes[m] = Recorded(ROUTELLM_RESPONSE, row[m] == "True", cost)
                yield ReplayRow(f"{file.stem}-{i}", prompt, file.stem, outcomes)


class ReplayProvider:
    name = "replay"
    notes_tries = False

    def __init__(self, data: Path | None, counter: TokenCounter) -> None:
        if data is None:
            raise PermanentError(
                "the replay provider needs TIERFLEET_REPLAY_DATA (a CSV or folder)"
            )
        self.data = data
        self.counter = counter
        # Loaded on first use, in the worker process.
        self._rows = Lazy(lambda: {row.sample_id: row for row in read_routerbench(data)})

    @property
    def rows(self) -> dict[str, ReplayRow]:
        return self._rows.get()

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion | Exception]:
        out: list[Completion | Exception] = []
        for request in requests:
            sample_id = str(request.labels.get("replay_id", ""))
            row = self.rows.get(sample_id)
            if row is None:
                raise PermanentError(f"replay data has no prompt with replay_id={sample_id!r}")
            recorded = row.outcomes.get(request.model.name)
            if recorded is None:
                raise PermanentError(f"replay data has no model {request.model.name!r}")
            out.append(
                Completion(
                    text=recorded.response,
                    tokens_in=prompt_tokens(self.counter, request.messages),
                    tokens_out=self.counter.count_many([recorded.response])[0],
                    billed_usd=recorded.cost_usd,
                    correct=recorded.correct,
                    simulated=False,
                )
            )
        return out
