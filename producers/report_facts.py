"""The report's facts beyond the totals: cost by task kind, cost per successful execution
per workflow and task kind, latency percentiles per lane, savings by lever, budget advice
from observed session spend, cost over time by model. Plain functions over ledger entries
(and the producers' execution records)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from policies.budgets import recommend_budgets
from policies.savings import total_savings
from policies.tiers import TierTable
from producers.bill import calls_of
from producers.report import percentile
from queues.records import ExecutionRecord, LedgerEntry


def per_ok_step(entries: Sequence[LedgerEntry], key: str) -> dict[str, dict[str, float]]:
    """Per value of ``key`` (workflow, task_kind): steps, answered steps, cost, and cost per
    answered step (every step's cost, failed ones included, over the answered ones)."""
    rows: dict[str, dict[str, float]] = defaultdict(lambda: {"steps": 0, "ok": 0, "cost_usd": 0.0})
    for e in entries:
        row = rows[str(getattr(e, key)) or "(none)"]
        row["steps"] += 1
        row["ok"] += int(e.status == "ok")
        row["cost_usd"] += e.cost_usd
    for row in rows.values():
        row["cost_per_ok_usd"] = row["cost_usd"] / row["ok"] if row["ok"] else 0.0
    return dict(rows)


def per_successful_execution(
    entries: Sequence[LedgerEntry], executions: Sequence[ExecutionRecord]
) -> dict[str, dict[str, float]]:
    """Per workflow, from the producers' word on each run (session): runs reported, runs
    that succeeded, what the reported runs' steps cost, and that over the successes."""
    spend: dict[tuple[str, str], float] = defaultdict(float)
    for e in entries:
        spend[(e.tenant, e.session_id)] += e.cost_usd
    last: dict[tuple[str, str], ExecutionRecord] = {}
    for record in executions:  # oldest first: a run reported twice keeps its last word
        last[(record.tenant, record.session_id)] = record
    rows: dict[str, dict[str, float]] = defaultdict(
        lambda: {"executions": 0, "succeeded": 0, "cost_usd": 0.0}
    )
    for key, record in last.items():
        row = rows[record.workflow or "(none)"]
        row["executions"] += 1
        row["succeeded"] += int(record.succeeded)
        row["cost_usd"] += spend.get(key, 0.0)
    for row in rows.values():
        row["cost_per_success_usd"] = (
            row["cost_usd"] / row["succeeded"] if row["succeeded"] else 0.0
        )
    return dict(rows)


def latency_by_lane(entries: Sequence[LedgerEntry]) -> dict[str, dict[str, float]]:
    lanes: dict[str, list[float]] = defaultdict(list)
    for e in entries:
        lanes[e.lane].append(e.latency_ms)
    return {
        lane: {"steps": len(v), **{f"p{q}_ms": round(percentile(v, q), 1) for q in (50, 95, 99)}}
        for lane, v in sorted(lanes.items())
    }


def session_spend(entries: Sequence[LedgerEntry]) -> dict[str, float]:
    spend: dict[str, float] = defaultdict(float)
    for e in entries:
        spend[f"{e.tenant}/{e.session_id}"] += e.cost_usd
    return dict(spend)


def cost_over_time(entries: Sequence[LedgerEntry], buckets: int = 30) -> dict[str, Any]:
    """Dollars per model in equal time buckets over the ledger's span (every call)."""
    if not entries:
        return {"starts": [], "by_model": {}}
    first = min(e.ts for e in entries)
    span = max(max(e.ts for e in entries) - first, 1e-6)
    width = span / buckets
    by_model: dict[str, list[float]] = defaultdict(lambda: [0.0] * buckets)
    for e in entries:
        slot = min(buckets - 1, int((e.ts - first) / width))
        for call in calls_of(e):
            by_model[call.model][slot] += call.cost_usd
    return {"starts": [first + i * width for i in range(buckets)], "by_model": dict(by_model)}


def report_facts(
    entries: Sequence[LedgerEntry],
    table: TierTable,
    executions: Sequence[ExecutionRecord] = (),
) -> dict[str, Any]:
    frontier = table.model_of(table.top.name)
    spend = session_spend(entries)
    advice = recommend_budgets(list(spend.values()))
    priced = [e for e in entries if e.frontier_usd > 0]
    return {
        "by_task_kind": per_ok_step(entries, "task_kind"),
        "by_workflow": per_ok_step(entries, "workflow"),
        "per_successful_execution": per_successful_execution(entries, executions),
        "latency_by_lane": latency_by_lane(entries),
        "frontier_usd": round(sum(e.frontier_usd for e in priced), 8),
        "frontier_priced_steps": len(priced),
        "savings_by_lever": {
            k: round(v, 8) for k, v in total_savings(priced, table.models, frontier).items()
        },
        "budget_advice": asdict(advice) if advice else None,
        "session_spend": sorted(spend.values()),
        "cost_over_time": cost_over_time(entries),
        "cache_layers": {
            "exact": sum(1 for e in entries if e.cache_hit and not e.semantic),
            "semantic": sum(1 for e in entries if e.semantic),
            "miss": sum(1 for e in entries if not e.cache_hit),
        },
    }
