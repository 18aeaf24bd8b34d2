"""The report's further facts (``producers.report_facts``) as terminal tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from policies.savings import LEVERS


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    return table


def render_facts(facts: Mapping[str, Any], console: Console) -> None:
    for key, what in (("by_task_kind", "task kind"), ("by_workflow", "workflow")):
        rows = [
            [
                name,
                str(int(r["steps"])),
                str(int(r["ok"])),
                f"{r['cost_usd']:.6f}",
                f"{r['cost_per_ok_usd']:.6f}",
            ]
            for name, r in sorted(facts[key].items(), key=lambda kv: -kv[1]["cost_usd"])
        ]
        console.print(
            _table(f"cost by {what}", [what, "steps", "answered", "cost $", "$ per answered"], rows)
        )
    runs = facts["per_successful_execution"]
    if runs:
        rows = [
            [
                name,
                str(int(r["executions"])),
                str(int(r["succeeded"])),
                f"{r['cost_usd']:.6f}",
                f"{r['cost_per_success_usd']:.6f}",
            ]
            for name, r in sorted(runs.items())
        ]
        console.print(
            _table(
                "cost per successful execution (producer-reported runs)",
                ["workflow", "runs", "succeeded", "cost $", "$ per success"],
                rows,
            )
        )
    lanes = [
        [lane, str(r["steps"]), f"{r['p50_ms']:.0f}", f"{r['p95_ms']:.0f}", f"{r['p99_ms']:.0f}"]
        for lane, r in facts["latency_by_lane"].items()
    ]
    console.print(_table("latency per lane (ms)", ["lane", "steps", "p50", "p95", "p99"], lanes))
    frontier = facts["frontier_usd"]
    if frontier:
        saved = facts["savings_by_lever"]
        rows = [
            [lever, f"{saved[lever]:.6f}", f"{saved[lever] / frontier:.1%}"] for lever in LEVERS
        ]
        console.print(
            _table(
                f"savings by lever against ${frontier:.6f} all-frontier",
                ["lever", "saved $", "share of all-frontier"],
                rows,
            )
        )
    advice = facts["budget_advice"]
    if advice:
        console.print(
            f"session budgets from {advice['sessions']} sessions' spend (p95 "
            f"${advice['p95_usd']:.6f}, p99 ${advice['p99_usd']:.6f}): "
            f"TIERFLEET_SESSION_SOFT_BUDGET_USD={advice['soft_usd']:.6f} "
            f"TIERFLEET_SESSION_BUDGET_USD={advice['hard_usd']:.6f}"
        )
