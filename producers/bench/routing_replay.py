"""The cascade replayed on recorded outcomes, without the fleet: the routing benchmark's
train/test split, its readers, the cost-quality curve over the router's target, the
frontier and oracle references, and the test rows written back for the replay provider."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from policies.cascade import Accept, CrossCheck, Escalate, decide, judge
from policies.learned_router import RouterArtifact, acceptance_text, route_learned
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
    target: float
    accuracy: float
    cost_per_query: float
    escalation_rate: float


def simulate(
    rows: Sequence[ReplayRow],
    artifact: RouterArtifact,
    table: TierTable,
    target: float,
    acceptance: RouterArtifact | None = None,
) -> Point:
    """Route each prompt, then replay the cascade's decisions on the recorded answers."""
    right = cost = escalated = 0.0
    for row in rows:
        route = route_learned(artifact, table, row.prompt, target)
        tier, model, first = route.tier, route.model, None
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


def tier_table_with(
    base: Path, folder: Path, cross_check: str | None, accept_min: float | None = None
) -> Path:
    """The tier table, its cheap tier accepting on agreement and the tiers below the top
    demanding ``accept_min`` confidence, when asked."""
    if cross_check is None and accept_min is None:
        return base
    top = load_tier_table(base).top.name
    lines, section = [], ""
    for line in base.read_text().splitlines():
        if line.startswith("["):
            section = line.strip()
        below_top = section.startswith("[tiers.") and section != f"[tiers.{top}]"
        if accept_min is not None and below_top and line.startswith("accept_min_confidence"):
            line = f"accept_min_confidence = {accept_min}"
        lines.append(line)
        if cross_check is not None and line.strip() == "[tiers.cheap]":
            lines += ['acceptance = "agreement"', f'cross_check = "{cross_check}"']
    path = folder / "tiers.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
