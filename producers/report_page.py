"""Everything a report shows, gathered from a fleet's stores in one place (the report
command and the demo share it), and the HTML page written from it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from policies.tiers import TierTable
from producers.baseline import Baseline
from producers.fleet import Fleet
from producers.report import summarize
from producers.report_audits import summarize_audits
from producers.report_facts import report_facts
from producers.report_html import render_html
from producers.self_hosting_report import summarize_self_hosting
from queues.records import LedgerEntry
from workers.alerting import AlertStore
from workers.stores.batch_jobs import RedisBatchJobs


def gather(
    fleet: Fleet,
    entries: list[LedgerEntry],
    table: TierTable,
    baseline: Baseline | None = None,
) -> dict[str, Any]:
    """The summary (with the provider bill, shadow and audit spend), the further facts, the alert
    events and the batch jobs, as one JSON-ready dict."""
    shadow = fleet.shadow_records()
    summary = summarize(entries, baseline, fleet.calls())
    summary["shadow_usd"] = round(sum(r.cost_usd for r in shadow), 8)
    spend = summary["cost"] + summary["shadow_usd"] + summary["audit_usd"]
    summary["total_spend_usd"] = round(spend, 8)
    summary["self_hosting"] = summarize_self_hosting(entries, table)
    summary["cache_audit"] = summarize_audits(*fleet.cache_audits())
    summary["facts"] = report_facts(entries, table, fleet.executions())
    summary["alerts"] = AlertStore(fleet.redis).events(200)
    summary["batch_jobs"] = [asdict(job) for job in RedisBatchJobs(fleet.redis).jobs()]
    return summary


def write_html(summary: dict[str, Any], path: Path, title: str) -> None:
    page = render_html(
        summary,
        summary["facts"],
        title=title,
        alerts=summary.get("alerts", []),
        batch_jobs=summary.get("batch_jobs", []),
    )
    path.write_text(page, encoding="utf-8")
