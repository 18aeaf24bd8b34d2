"""``tierfleet bench routing``: the learned router on recorded outcomes of real models.

It trains on the train data only, then runs the real fleet (Redis, Celery workers, the
replay provider answering with the recorded responses, correctness and costs) over the test
data at the chosen target, and reports accuracy and cost beside the frontier model alone
and the oracle (the cheapest model that was right, per prompt). The cost-quality curve
over the target is computed with the same policies (route, then the cascade's format check)
on the recorded outcomes, without the fleet: one fleet run per point would measure Celery,
not the router.

Without ``--test`` the ``--train`` data is split by prompt (a hash of its text, so a prompt
asked twice never lands on both sides).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.cascade import Accept, CrossCheck, Escalate, decide, judge
from policies.learned_router import RouterArtifact, acceptance_text, route_learned
from policies.text import stable_fraction
from policies.tiers import TierTable, load_tier_table
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.report import summarize_shadow
from producers.runner import run_workload
from producers.training.router import save_router, train_acceptance, train_router
from producers.workloads import replay_kind, replay_step_id, replay_workload
from queues.messages import PriorAnswer
from queues.settings import TABLES, Settings
from workers.ml.tokenizer import BpeCounter
from workers.providers.replay import ReplayRow, read_routellm, read_routerbench

ROUTERBENCH_TABLE = TABLES / "routerbench.toml"
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


def bench_routing(
    train_path: Path,
    test_path: Path | None,
    target: float,
    base: Settings,
    test_share: float = 0.3,
    png: Path | None = None,
    shadow_fraction: float = 0.0,
    cross_check: str | None = None,
    fmt: str = "routerbench",
    acceptance_min: float | None = None,
) -> dict[str, Any]:
    base_table = ROUTERBENCH_TABLE if fmt == "routerbench" else TABLES / "routellm.toml"
    rows = read_rows(train_path, fmt, base_table)
    if test_path is None:
        train, test = split_by_prompt(rows, test_share)
    else:
        train, test = rows, read_rows(test_path, fmt, base_table)
    artifact = train_router(train, trained_on=f"{train_path} ({len(train)} prompts)")

    with tempfile.TemporaryDirectory(prefix="tierfleet-routing-") as tmp:
        table_path = tier_table_with(base_table, Path(tmp), cross_check, acceptance_min)
        acceptance = None
        if acceptance_min is not None:
            acceptance = train_acceptance(train, trained_on=f"{train_path} ({len(train)} prompts)")
            save_router(acceptance, Path(tmp) / "acceptance.json")
        table = load_tier_table(table_path)
        frontier = table.model_of(table.top.name).name
        artifact_path, data_path = Path(tmp) / "router.json", Path(tmp) / "test.csv"
        save_router(artifact, artifact_path)
        write_test_csv(test, data_path)
        settings = base.model_copy(
            update={
                "tier_table": table_path,
                "replay_data": data_path,
                "router": "learned",
                "router_artifact": artifact_path,
                "router_target": target,
                "shadow_fraction": shadow_fraction,
                "acceptance_artifact": Path(tmp) / "acceptance.json" if acceptance else None,
            }
        )
        with LocalFleet(settings) as local, Fleet(local.settings) as fleet:
            results = run_workload(fleet, replay_workload(test, "rt", "routing"), timeout_s=1800)
            ids = {r.step_id for r in results}
            ledger = [e for e in fleet.ledger() if e["step_id"] in ids]
            shadow = settled_shadow(fleet) if shadow_fraction > 0 else []

    n = len(ledger)
    cost = sum(e["cost_usd"] for e in ledger) / n
    ref = reference(test, frontier)
    per_task: dict[str, dict[str, float]] = defaultdict(lambda: {"n": 0, "right": 0, "cost": 0.0})
    by_id = {replay_step_id("rt", i, r): r for i, r in enumerate(test)}
    for e in ledger:
        task = per_task[by_id[e["step_id"]].eval_name]
        task["n"] += 1
        task["right"] += bool(e["correct"]) and e["status"] == "ok"
        task["cost"] += e["cost_usd"]
    curve = [simulate(test, artifact, table, t, acceptance) for t in TARGETS]
    figures: dict[str, Any] = {
        "format": fmt,
        "train": f"{train_path} ({len(train)} prompts)",
        "test": f"{test_path or train_path} ({len(test)} prompts, held out by prompt)",
        "router": artifact.version,
        "target": target,
        "cheap_tier_acceptance": f"agreement with {cross_check}" if cross_check else "checks",
        "learned_acceptance_min": acceptance_min,
        "accuracy": round(sum(bool(e["correct"]) and e["status"] == "ok" for e in ledger) / n, 4),
        "cost_per_query": round(cost, 7),
        "cost_ratio_vs_frontier": round(cost / ref["frontier_cost_per_query"], 4),
        "escalation_rate": round(sum(e["escalations"] > 0 for e in ledger) / n, 4),
        **{k: round(v, 7) for k, v in ref.items()},
        "model_mix": dict(sorted(_mix(ledger).items(), key=lambda kv: -kv[1])),
        "per_task": {
            name: {
                "prompts": int(t["n"]),
                "accuracy": round(t["right"] / t["n"], 4),
                "cost_per_query": round(t["cost"] / t["n"], 7),
            }
            for name, t in sorted(per_task.items())
        },
        "curve": [
            {
                "target": p.target,
                "accuracy": round(p.accuracy, 4),
                "cost_ratio_vs_frontier": round(
                    p.cost_per_query / ref["frontier_cost_per_query"], 4
                ),
                "escalation_rate": round(p.escalation_rate, 4),
            }
            for p in curve
        ],
    }
    if shadow:
        figures["shadow"] = shadow_figures(shadow, ledger, frontier)
    if png is not None:
        figures["curve_png"] = plot_curve(figures, png)
    return figures


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


def settled_shadow(
    fleet: Fleet, quiet_s: float = 2.0, timeout_s: float = 120.0
) -> list[dict[str, Any]]:
    """Shadow records, once no new one has arrived for ``quiet_s`` (they trail the answers)."""
    deadline = time.monotonic() + timeout_s
    count, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = len(fleet.shadow_records())
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.2)
    return fleet.shadow_records()


def shadow_figures(
    records: Sequence[dict[str, Any]], ledger: Sequence[dict[str, Any]], frontier: str
) -> dict[str, Any]:
    """Shadow agreement beside what the labels say of the same accepted answers: how well
    the production signal tracks the quality it stands in for."""
    by_step = {e["step_id"]: e for e in ledger}
    sampled = [by_step[r["step_id"]] for r in records if r["step_id"] in by_step]
    summary = summarize_shadow(records)
    summary["labelled_accuracy_of_sampled"] = (
        round(sum(bool(e["correct"]) for e in sampled) / len(sampled), 4) if sampled else None
    )
    summary["shadow_model"] = frontier
    return summary


def _mix(ledger: Sequence[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for e in ledger:
        out[str(e["model"])] += 1
    return dict(out)


def plot_curve(figures: dict[str, Any], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the install
        return "not drawn: matplotlib is not installed (pip install 'tierfleet[train]')"
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [100 * p["cost_ratio_vs_frontier"] for p in figures["curve"]]
    ys = [100 * p["accuracy"] for p in figures["curve"]]
    ax.plot(xs, ys, "o-", label="learned router (target knob)")
    ax.scatter([100], [100 * figures["frontier_accuracy"]], marker="s", label="frontier only")
    oracle_x = 100 * figures["oracle_cost_per_query"] / figures["frontier_cost_per_query"]
    ax.scatter([oracle_x], [100 * figures["oracle_accuracy"]], marker="*", label="oracle")
    ax.scatter(
        [100 * figures["cost_ratio_vs_frontier"]],
        [100 * figures["accuracy"]],
        marker="x",
        s=80,
        label=f"fleet at target {figures['target']}",
    )
    ax.set_xlabel("cost, % of frontier only")
    ax.set_ylabel("accuracy, %")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
