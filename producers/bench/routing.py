"""``tierfleet bench routing``: routing and acceptance on recorded outcomes of real models.

It trains the learned router on the train data only, then runs the real fleet (Redis,
Celery workers, the replay provider answering with the recorded responses, correctness and
costs) over the test data with the table's own policy (its routing rules and its cheap
tier's acceptance) or the learned router at a target, and reports accuracy and cost beside
the frontier model alone and the oracle (the cheapest model that was right, per prompt).
The cost-quality curve over the learned router's target is computed with the same policies
(route, then the cascade's decisions) on the recorded outcomes, without the fleet: one
fleet run per point would measure Celery, not the router.

Without ``--test`` the ``--train`` data is split by prompt (a hash of its text, so a prompt
asked twice never lands on both sides).
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.learned_router import RouterArtifact
from policies.tables import TABLES
from policies.tiers import TierTable, load_tier_table
from producers.bench.routing_figures import plot_curve, settled_shadow, shadow_figures
from producers.bench.routing_replay import (
    TARGETS,
    Point,
    learned_start,
    read_rows,
    reference,
    rule_start,
    simulate,
    split_by_prompt,
    tier_table_with,
    write_test_csv,
)
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.recorded import replay_step_id, replay_workload
from producers.runner import run_workload
from producers.training.router import save_router, train_acceptance, train_router
from queues.records import LedgerEntry, ShadowRecord
from queues.settings import Settings
from workers.providers.replay import ReplayRow

ROUTERBENCH_TABLE = TABLES / "routerbench.toml"


@dataclass(frozen=True)
class RoutingRun:
    """What the benchmark asks: the data, the target, and the cascade's options."""

    train_path: Path
    test_path: Path | None
    target: float = 0.8  # the learned router's; the rules have none
    test_share: float = 0.3
    shadow_fraction: float = 0.0
    cross_check: str | None = None
    fmt: str = "routerbench"
    acceptance_min: float | None = None
    # "rules": the table's own routing, as the fleet ships it; "learned": the learned
    # router at ``target``. None: rules for routerbench, learned for routellm (whose two-model
    # table has no rule that could tell its prompts apart).
    router: str | None = None

    @property
    def router_kind(self) -> str:
        return self.router or ("rules" if self.fmt == "routerbench" else "learned")

    @property
    def base_table(self) -> Path:
        return ROUTERBENCH_TABLE if self.fmt == "routerbench" else TABLES / "routellm.toml"


@dataclass(frozen=True)
class Trained:
    train: list[ReplayRow]
    test: list[ReplayRow]
    router: RouterArtifact
    acceptance: RouterArtifact | None


def train_on(run: RoutingRun) -> Trained:
    """The router (and acceptance check) fitted on the train rows only."""
    rows = read_rows(run.train_path, run.fmt, run.base_table)
    if run.test_path is None:
        train, test = split_by_prompt(rows, run.test_share)
    else:
        train, test = rows, read_rows(run.test_path, run.fmt, run.base_table)
    trained_on = f"{run.train_path} ({len(train)} prompts)"
    router = train_router(train, trained_on=trained_on)
    acceptance = None
    if run.acceptance_min is not None:
        acceptance = train_acceptance(train, trained_on=trained_on)
    return Trained(train, test, router, acceptance)


def run_fleet(
    run: RoutingRun, trained: Trained, base: Settings
) -> tuple[TierTable, list[LedgerEntry], list[ShadowRecord]]:
    """The test rows through a private fleet (replay provider, learned router): the tier
    table it ran, the steps' ledger entries and the shadow records."""
    with tempfile.TemporaryDirectory(prefix="tierfleet-routing-") as tmp:
        folder = Path(tmp)
        table_path = tier_table_with(run.base_table, folder, run.cross_check, run.acceptance_min)
        acceptance_path = None
        if trained.acceptance is not None:
            acceptance_path = folder / "acceptance.json"
            save_router(trained.acceptance, acceptance_path)
        save_router(trained.router, folder / "router.json")
        write_test_csv(trained.test, folder / "test.csv")
        settings = base.model_copy(
            update={
                "tier_table": table_path,
                "replay_data": folder / "test.csv",
                "router": run.router_kind,
                "router_artifact": folder / "router.json",
                "router_target": run.target,
                "shadow_fraction": run.shadow_fraction,
                "acceptance_artifact": acceptance_path,
            }
        )
        with LocalFleet(settings) as local, Fleet(local.settings) as fleet:
            workload = replay_workload(trained.test, "rt", "routing")
            results = run_workload(fleet, workload, timeout_s=1800)
            ids = {r.step_id for r in results}
            ledger = [e for e in fleet.ledger() if e.step_id in ids]
            shadow = settled_shadow(fleet) if run.shadow_fraction > 0 else []
        return load_tier_table(table_path), ledger, shadow


def bench_routing(run: RoutingRun, base: Settings, png: Path | None = None) -> dict[str, Any]:
    trained = train_on(run)
    table, ledger, shadow = run_fleet(run, trained, base)
    frontier = table.model_of(table.top.name).name
    ref = reference(trained.test, frontier)
    test, accept = trained.test, trained.acceptance
    curve = [
        simulate(test, table, learned_start(trained.router, table, t), accept, t) for t in TARGETS
    ]
    rules = simulate(test, table, rule_start(table), accept)
    tested = f"{run.test_path or run.train_path} ({len(trained.test)} prompts"
    figures = {
        "format": run.fmt,
        "train": f"{run.train_path} ({len(trained.train)} prompts)",
        "test": f"{tested}, held out by prompt)",
        "router": (
            f"learned {trained.router.version}, target {run.target}"
            if run.router_kind == "learned"
            else "the table's rules"
        ),
        "cheap_tier_acceptance": acceptance_of(table),
        "learned_acceptance_min": run.acceptance_min,
        **fleet_figures(ledger, ref),
        "per_task": per_task(ledger, trained.test),
        "rules_point": curve_point(rules, ref),
        "curve": [curve_point(p, ref) for p in curve],
    }
    if shadow:
        figures["shadow"] = shadow_figures(shadow, ledger, frontier)
    if png is not None:
        figures["curve_png"] = plot_curve(figures, png)
    return figures


def fleet_figures(ledger: Sequence[LedgerEntry], ref: dict[str, float]) -> dict[str, Any]:
    n = len(ledger)
    cost = sum(e.cost_usd for e in ledger) / n
    mix: dict[str, int] = defaultdict(int)
    for e in ledger:
        mix[str(e.model)] += 1
    return {
        "accuracy": round(sum(bool(e.correct) and e.status == "ok" for e in ledger) / n, 4),
        "cost_per_query": round(cost, 7),
        "cost_ratio_vs_frontier": round(cost / ref["frontier_cost_per_query"], 4),
        "escalation_rate": round(sum(e.escalations > 0 for e in ledger) / n, 4),
        **{k: round(v, 7) for k, v in ref.items()},
        "model_mix": dict(sorted(mix.items(), key=lambda kv: -kv[1])),
    }


def per_task(ledger: Sequence[LedgerEntry], test: Sequence[ReplayRow]) -> dict[str, Any]:
    tasks: dict[str, dict[str, float]] = defaultdict(lambda: {"n": 0, "right": 0, "cost": 0.0})
    by_id = {replay_step_id("rt", i, r): r for i, r in enumerate(test)}
    for e in ledger:
        task = tasks[by_id[e.step_id].eval_name]
        task["n"] += 1
        task["right"] += bool(e.correct) and e.status == "ok"
        task["cost"] += e.cost_usd
    return {
        name: {
            "prompts": int(t["n"]),
            "accuracy": round(t["right"] / t["n"], 4),
            "cost_per_query": round(t["cost"] / t["n"], 7),
        }
        for name, t in sorted(tasks.items())
    }


def acceptance_of(table: TierTable) -> str:
    cheap = table.tiers[0]
    if cheap.acceptance != "agreement":
        return cheap.acceptance
    goes = table.escalation_of(cheap.name)
    return f"agreement of {cheap.model} with {cheap.cross_check}, else {goes}"


def curve_point(p: Point, ref: dict[str, float]) -> dict[str, float | None]:
    return {
        "target": p.target,
        "accuracy": round(p.accuracy, 4),
        "cost_ratio_vs_frontier": round(p.cost_per_query / ref["frontier_cost_per_query"], 4),
        "escalation_rate": round(p.escalation_rate, 4),
    }
