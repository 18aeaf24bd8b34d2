"""The semantic cache's audits in the report: how many would-be hits the judge saw and what
they cost, the running wrong-hit estimate of served hits with its exact interval, and the
threshold each score is served at (`tierfleet report`, the demo, `tierfleet cache audit`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from policies.hit_audit import wrong_hit_estimate
from queues.records import AuditRecord


def summarize_audits(
    records: Sequence[AuditRecord], bounds: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    ruled = [r for r in records if r.same is not None]
    estimate = wrong_hit_estimate([not r.same for r in ruled if r.served])
    return {
        "judged": len(records),
        "with_verdict": len(ruled),
        "cost_usd": round(sum(r.cost_usd for r in records), 8),
        "served_judged": estimate.judged,
        "served_wrong": estimate.wrong,
        "wrong_rate": round(estimate.rate, 4),
        "wrong_rate_interval": [round(estimate.low, 4), round(estimate.high, 4)],
        "confidence": estimate.confidence,
        "thresholds": {scorer: dict(b) for scorer, b in sorted(bounds.items())},
    }


def render_audits(summary: Mapping[str, Any], console: Console) -> None:
    if not summary["judged"] and not summary["thresholds"]:
        return
    console.print(
        f"semantic cache audits: {summary['judged']} would-be hits judged "
        f"(${summary['cost_usd']:.6f} on the bill), {summary['with_verdict']} with a verdict, "
        f"{summary['served_judged']} of them served"
    )
    if summary["served_judged"]:
        low, high = summary["wrong_rate_interval"]
        console.print(
            f"served hits judged wrong: {summary['served_wrong']} of "
            f"{summary['served_judged']} = [bold]{summary['wrong_rate']:.1%}[/] "
            f"({summary['confidence']:.0%} interval {low:.1%} to {high:.1%})"
        )
    table = Table(title="the threshold each scorer is served at (as of the last lookup)")
    for column in ("scorer", "threshold", "source", "prior", "judged above", "wrong", "bound"):
        table.add_column(column)
    for scorer, b in summary["thresholds"].items():
        threshold = "none served" if b["threshold"] is None else f"{b['threshold']:.4f}"
        table.add_row(
            scorer,
            threshold,
            b["source"],
            f"{b['prior']:.4f}",
            str(b["judged"]),
            str(b["wrong"]),
            f"{b['upper']:.1%}",
        )
    console.print(table)
    for scorer, b in summary["thresholds"].items():
        console.print(f"{scorer}: {b['why']}")
