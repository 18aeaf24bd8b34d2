"""``tierfleet demo``: the whole fleet on embedded defaults, a generated agent workload, and
a report of cost beside the all-frontier baseline, quality beside quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from policies.tables import TABLES
from policies.tiers import TierTable, load_tier_table
from producers.baseline import frontier_baseline
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.quality_curve import quality_curve
from producers.recorded import routerbench_workload
from producers.report import render
from producers.report_audits import render_audits
from producers.report_page import gather, write_html
from producers.report_tables import render_facts
from producers.runner import run_with_progress
from producers.self_hosting_report import render_self_hosting
from producers.workloads import Workload, generate_workload
from queues.messages import StepResult
from queues.settings import Settings

ROUTERBENCH_TABLE = TABLES / "routerbench.toml"
LOCAL_TABLE = TABLES / "local.toml"  # SmolLM2 on the CPU as the cheap tier


def demo_settings(base: Settings, replay: Path | None, local: bool = False) -> Settings:
    # A demo lasts seconds: the fleet's own alerts are evaluated every 2 s, not every 15.
    base = base.model_copy(update={"alert_interval_s": min(base.alert_interval_s, 2.0)})
    if replay is not None and local:
        raise ValueError("--replay answers with recorded models; --local runs one: pick one")
    if local:
        return base.model_copy(update={"tier_table": LOCAL_TABLE})
    if replay is None:
        return base
    return base.model_copy(update={"tier_table": ROUTERBENCH_TABLE, "replay_data": replay})


def render_curve(
    points: list[dict[str, Any]] | None, table: TierTable, settings: Settings, console: Console
) -> None:
    """What each TIERFLEET_QUALITY setting buys, the one this run used marked."""
    if not points:
        return
    used = settings.quality
    if used is None:
        used = table.tier(table.names[0]).accept_min_confidence
    curve = Table(title="the quality knob (TIERFLEET_QUALITY): what each setting buys")
    for col in ("setting", "savings", "quality", "all-frontier", "gap (points)"):
        curve.add_column(col, justify="right")
    for p in points:
        mark = " (this run)" if abs(p["quality_knob"] - used) < 1e-9 else ""
        curve.add_row(
            f"{p['quality_knob']:.2f}{mark}",
            f"{p['savings_pct']:.1f}%",
            f"{p['quality']:.1%}",
            f"{p['frontier_quality']:.1%}",
            f"{p['gap_points']:.1f}",
        )
    console.print(curve)
    console.print("(each point: the same steps through the stages in one process, without budgets)")


def report_runs(fleet: Fleet, workload: Workload, results: list[StepResult]) -> None:
    """As an agent would: each session is one run of its workflow, and it succeeded when
    every step was answered and none was marked wrong."""
    by_id = {r.step_id: r for r in results}
    for session in workload.sessions:
        mine = [by_id.get(step.step_id) for step in session]
        succeeded = all(r is not None and r.status == "ok" and r.correct is not False for r in mine)
        first = session[0]
        fleet.record_execution(first.tenant, first.workflow, first.session_id, succeeded=succeeded)


def run_demo(
    settings: Settings,
    workload: Workload,
    console: Console,
    out: Path | None = None,
    html: Path | None = None,
) -> dict[str, Any]:
    table = load_tier_table(settings.tier_table, settings.price_table)
    console.print(
        f"[bold]tierfleet demo[/]: {len(workload.steps)} steps in "
        f"{len(workload.sessions)} sessions; tiers {', '.join(table.names)} "
        f"(table {table.version})"
    )
    with LocalFleet(settings) as local:
        console.print(
            f"fleet up: redis {local.settings.broker_url}, "
            f"{len(local.processes)} worker processes (logs: {local.log_dir})"
        )
        with Fleet(local.settings, table) as fleet:
            results = run_with_progress(fleet, workload)
            report_runs(fleet, workload, results)
            ids = {r.step_id for r in results}
            entries = [e for e in fleet.ledger() if e.step_id in ids]
            console.print("computing the all-frontier baseline ...")
            baseline = frontier_baseline(workload.steps, table, settings)
            summary = gather(fleet, entries, table, baseline)
    console.print("tracing the quality knob's curve on the same workload ...")
    summary["quality_curve"] = quality_curve(workload, table, settings, baseline)
    render(summary, console, title="tierfleet demo")
    render_curve(summary["quality_curve"], table, settings, console)
    render_facts(summary["facts"], console)
    render_self_hosting(summary["self_hosting"], console)
    render_audits(summary["cache_audit"], console)
    if out is not None:
        out.write_text(json.dumps(summary, indent=2))
        console.print(f"report written to {out}")
    if html is not None:
        write_html(summary, html, "tierfleet demo")
        console.print(f"page written to {html}")
    return summary


def demo_workload(sessions: int, seed: int, replay: Path | None, steps: int) -> Workload:
    if replay is not None:
        return routerbench_workload(replay, limit=steps, seed=seed)
    return generate_workload(sessions=sessions, seed=seed)
