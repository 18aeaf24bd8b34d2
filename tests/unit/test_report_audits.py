"""The semantic cache's audits as the report shows them."""

import math

from rich.console import Console

from producers.report_audits import render_audits, summarize_audits
from queues.records import AuditRecord


def record(served: bool, same: bool | None) -> AuditRecord:
    return AuditRecord(scorer="cosine", score=0.99, served=served, same=same, cost_usd=0.001)


def test_the_estimate_counts_judged_served_hits_only():
    records = [record(True, False), record(True, True), record(False, False), record(True, None)]
    bound = {"threshold": None, "source": "suspended", "prior": 0.991, "judged": 3, "wrong": 2}
    summary = summarize_audits(records, {"cosine": {**bound, "upper": 0.9, "why": "2 of 3"}})
    assert (summary["judged"], summary["with_verdict"], summary["served_judged"]) == (4, 3, 2)
    assert summary["served_wrong"] == 1 and summary["wrong_rate"] == 0.5
    low, high = summary["wrong_rate_interval"]
    assert 0 < low < 0.5 < high < 1 and math.isclose(summary["cost_usd"], 0.004)

    console = Console(record=True, width=120)
    render_audits(summary, console)
    text = console.export_text()
    assert "served hits judged wrong: 1 of 2 = 50.0%" in text
    assert "none served" in text and "suspended" in text and "cosine: 2 of 3" in text


def test_nothing_is_shown_for_a_cache_never_audited():
    console = Console(record=True)
    render_audits(summarize_audits([], {}), console)
    assert console.export_text() == ""
