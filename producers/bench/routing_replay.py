"""The cascade replayed on recorded outcomes, without the fleet: the routing benchmark's
train/test split, its readers, the cost-quality curve over the router's target, the
frontier and oracle references, and the test rows written back for the replay provider."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from policies.cascade import Accept, CrossCheck, Escalate, decide, judge
from policies.learned_router import RouterArtifact, acceptance_text, route_learned
from policies.routing import route_by_rules
from policies.text import stable_fraction
from policies.tiers import TierTable, load_tier_table
from producers.recorded import replay_kind
from queues.messages import PriorAnswer
from workers.ml.tokenizer import BpeCounter
from workers.providers.replay import ReplayRow, read_routellm, read_routerbench

TARGETS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def split_by_prompt(
    rows: Sequence[ReplayRow], test_share: float
) -> tuple[list[ReplayRow], list[ReplayRow]]:
    train = [r for r in rows if stable_fraction(r.prompt) >= test_share]
    test = [r for r in rows if stable_fraction(r.prompt) < test_share]
    return train, test


def read_rows(path: Path, fmt: str, table_path: Path) -> list[ReplayRow]:
    if fmt == "routerbench":
        return list(read_routerbench(path))
    if fmt == "routellm":
        table = load_tier_table(table_path)
        prices = {
            name: (m.price.input_per_mtok, m.price.output_per_mtok)
            for name, m in table.models.items()
        }
        return list(read_routellm(path, prices, BpeCounter("cl100k_base")))
    raise ValueError(f"unknown format {fmt!r}: routerbench or routellm")


@dataclass(frozen=True)
class Point:
    target: float | None  # the learned router's target; None for the table's rules
    accuracy: float
    cost_per_query: float
    escalation_rate: float


# Where a recorded prompt starts: its tier and the model (None: the tier's default).
Start = Callable[[ReplayRow], tuple[str, str | None]]


def rule_start(table: TierTable) -> Start:
    """The table's rule router, as the fleet's classify stage applies it to a replay step."""
    counter = BpeCounter()

    def start(row: ReplayRow) -> tuple[str, str | None]:
        (tokens,) = counter.count_many([row.prompt])
        route = route_by_rules(
            table, task_kind=replay_kind(row), prompt_tokens=tokens, has_schema=False
        )
        return route.tier, None

    return start


def learned_start(artifact: RouterArtifact, table: TierTable, target: float) -> Start:
    def start(row: ReplayRow) -> tuple[str, str | None]:
        route = route_learned(artifact, table, row.prompt, target)
        return route.tier, route.model

    return start


def simulate(
    rows: Sequence[ReplayRow],
    table: TierTable,
    start: Start,
    acceptance: RouterArtifact | None = None,
    target: float | None = None,
) -> Point:
    """Start each prompt where ``start`` says, then replay the cascade's decisions on the
    recorded answers."""
    right = cost = escalated = 0.0
    for row in rows:
        tier, picked = start(row)
        model, first = picked or table.model_of(tier).name, None
        while True:
            recorded = row.outcomes[model]
            cost += recorded.cost_usd
            this = PriorAnswer(
                answer=recorded.response, model=model, tier=tier, correct=recorded.correct
            )
            verdict = judge(
                recorded.response,
                task_kind=replay_kind(row),
                schema=None,
                confidence=_confidence(acceptance, model, row.prompt, recorded.response),
                min_confidence=table.tier(tier).accept_min_confidence,
            )
            decision = decide(table, this, verdict, replay_kind(row), first)
            if isinstance(decision, CrossCheck):
                first, model = decision.first, decision.model
                continue
            if isinstance(decision, Escalate):
                escalated += 1
                tier, model, first = decision.tier, table.model_of(decision.tier).name, None
                continue
            right += bool(decision.answer.correct) if isinstance(decision, Accept) else 0
            break
    n = len(rows)
    return Point(target, right / n, cost / n, escalated / n)


def _confidence(
    acceptance: RouterArtifact | None, model: str, prompt: str, answer: str
) -> float | None:
    if acceptance is None:
        return None
    return acceptance.success_of(model, acceptance_text(prompt, answer))


def reference(rows: Sequence[ReplayRow], frontier: str) -> dict[str, float]:
    n = len(rows)
    oracle_right = oracle_cost = 0.0
    for row in rows:
        right = [o for o in row.outcomes.values() if o.correct]
        if right:
            oracle_right += 1
            oracle_cost += min(o.cost_usd for o in right)
        else:
            oracle_cost += min(o.cost_usd for o in row.outcomes.values())
    return {
        "frontier_accuracy": sum(r.outcomes[frontier].correct for r in rows) / n,
        "frontier_cost_per_query": sum(r.outcomes[frontier].cost_usd for r in rows) / n,
        "oracle_accuracy": oracle_right / n,
        "oracle_cost_per_query": oracle_cost / n,
    }


def write_test_csv(rows: Sequence[ReplayRow], path: Path) -> None:
    """The test rows as a RouterBench CSV, for the replay provider of the fleet."""
    import csv

    models = sorted(rows[0].outcomes)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["sample_id", "prompt", "eval_name", *models]
            + [m + "|model_response" for m in models]
            + [m + "|total_cost" for m in models]
        )
        for r in rows:
            writer.writerow(
                [r.sample_id, json.dumps([r.prompt]), r.eval_name]
                + [int(r.outcomes[m].correct) for m in models]
                + [json.dumps([r.outcomes[m].response]) for m in models]
                + [r.outcomes[m].cost_usd for m in models]
            )


def table_variant(
    base: Path, cross_check: str | None, accept_min: float | None = None
) -> dict[str, Any]:
    """The tier table's TOML with its cheap tier accepting on agreement with
    ``cross_check`` ("none": on its checks alone, escalating to the next tier) and the tiers
    below the top demanding ``accept_min`` confidence, when asked."""
    with base.open("rb") as fh:
        data = tomllib.load(fh)
    tiers = sorted(data["tiers"].items(), key=lambda kv: int(kv[1]["rank"]))
    cheap = tiers[0][1]
    if cross_check == "none":
        for key in ("acceptance", "cross_check", "escalate_to"):
            cheap.pop(key, None)
    elif cross_check is not None:
        cheap.update(acceptance="agreement", cross_check=cross_check)
    if accept_min is not None:
        for _, spec in tiers[:-1]:
            spec["accept_min_confidence"] = accept_min
    return data


def tier_table_with(
    base: Path, folder: Path, cross_check: str | None, accept_min: float | None = None
) -> Path:
    """``table_variant`` written to ``folder`` for the fleet (``base`` when nothing changes)."""
    if cross_check is None and accept_min is None:
        return base
    path = folder / "tiers.toml"
    path.write_text(tomli_w.dumps(table_variant(base, cross_check, accept_min)))
    return path
