"""How the routerbench table's acceptance was chosen (``tierfleet bench routing-tune``).

Only the training prompts take part: they are split once more by prompt, a router is fitted
on one part, and every candidate policy is replayed on the other (the tuning part). The
prompts ``bench routing`` reports on never enter. A candidate is the cheap tier's default
model, the model that must agree with it, and where a disagreement goes (the frontier, or
the next tier up); beside them, the learned router over its targets with the best of those.
The rule: the highest accuracy at no more than ``max_cost_ratio`` of the frontier's cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations
from pathlib import Path
from typing import Any

from policies.text import stable_fraction
from policies.tiers import TierTable, load_tier_table, parse_tier_table
from producers.bench.routing_replay import (
    TARGETS,
    Point,
    learned_start,
    reference,
    rule_start,
    simulate,
    table_variant,
)
from producers.training.router import train_router
from workers.providers.replay import ReplayRow

TUNE_SHARE = 0.3  # of the training prompts


def tuning_split(
    train: Sequence[ReplayRow], test_share: float
) -> tuple[list[ReplayRow], list[ReplayRow]]:
    """The training prompts (hash fraction >= ``test_share``) split again by the same hash:
    the lowest ``TUNE_SHARE`` of them tune, the rest fit the router."""
    edge = test_share + (1 - test_share) * TUNE_SHARE
    fit = [r for r in train if stable_fraction(r.prompt) >= edge]
    tune = [r for r in train if stable_fraction(r.prompt) < edge]
    return fit, tune


def variant(base: Path, first: str, cross: str, skip_mid: bool) -> TierTable:
    """The table with ``first`` answering at the cheap tier and ``cross`` checking it."""
    data = table_variant(base, cross)
    ranked = sorted(data["tiers"], key=lambda name: int(data["tiers"][name]["rank"]))
    cheap = data["tiers"][ranked[0]]
    cheap["models"] = [first, *(m for m in cheap["models"] if m != first)]
    cheap.pop("escalate_to", None)
    if skip_mid:
        cheap["escalate_to"] = ranked[-1]
    return parse_tier_table(data)


def _row(policy: dict[str, Any], point: Point, frontier: dict[str, float]) -> dict[str, Any]:
    return {
        **policy,
        "accuracy": round(point.accuracy, 4),
        "share_of_frontier_accuracy": round(point.accuracy / frontier["frontier_accuracy"], 4),
        "cost_ratio_vs_frontier": round(
            point.cost_per_query / frontier["frontier_cost_per_query"], 4
        ),
    }


def _best(rows: list[dict[str, Any]], max_cost_ratio: float) -> dict[str, Any]:
    affordable = [r for r in rows if r["cost_ratio_vs_frontier"] <= max_cost_ratio]
    return max(affordable or rows, key=lambda r: (r["accuracy"], -r["cost_ratio_vs_frontier"]))


def tune_routing(
    train: Sequence[ReplayRow],
    base: Path,
    test_share: float = 0.3,
    max_cost_ratio: float = 0.30,
) -> dict[str, Any]:
    fit, tune = tuning_split(train, test_share)
    shipped = load_tier_table(base)
    frontier = reference(tune, shipped.model_of(shipped.top.name).name)
    cheap = shipped.tiers[0].members
    rows = []
    for first, cross in permutations(cheap, 2):
        for skip_mid in (True, False):
            table = variant(base, first, cross, skip_mid)
            policy = {"router": "rules", "first": first, "cross_check": cross}
            policy["disagreement_to"] = "frontier" if skip_mid else "next tier"
            rows.append(_row(policy, simulate(tune, table, rule_start(table)), frontier))
    best = _best(rows, max_cost_ratio)
    table = variant(base, best["first"], best["cross_check"], best["disagreement_to"] == "frontier")
    acceptance = {k: best[k] for k in ("first", "cross_check", "disagreement_to")}
    router = train_router(fit, trained_on=f"{len(fit)} fitting prompts")
    for target in TARGETS:
        point = simulate(tune, table, learned_start(router, table, target), target=target)
        rows.append(_row({"router": f"learned, target {target}", **acceptance}, point, frontier))
    return {
        "fit_prompts": len(fit),
        "tune_prompts": len(tune),
        "rule": f"highest accuracy at <= {max_cost_ratio:.0%} of frontier cost",
        "frontier_accuracy": round(frontier["frontier_accuracy"], 4),
        "chosen": _best(rows, max_cost_ratio),
        "candidates": sorted(rows, key=lambda r: -r["accuracy"]),
    }
