"""``tierfleet report --html``: the report as one self-contained page (inline SVG charts and
styles, no script, nothing fetched), for people who would rather look than read tables."""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence
from typing import Any

from producers import report_charts as charts

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:0;color:#1d2b36;
background:#f6f7f9}
header{background:#264653;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px;padding:16px}
section{background:#fff;border-radius:8px;padding:14px 18px;box-shadow:0 1px 3px #0002}
section h2{font-size:15px;margin:0 0 8px}.kpis{display:flex;flex-wrap:wrap;gap:12px}
.kpi{background:#eef3f5;border-radius:6px;padding:8px 12px;min-width:120px}
.kpi b{display:block;font-size:20px}table{border-collapse:collapse;width:100%;font-size:12px}
td,th{padding:3px 6px;border-bottom:1px solid #e4e7ea;text-align:right}
td:first-child,th:first-child{text-align:left}svg{max-width:100%;height:auto}
.note{color:#5b6770;font-size:12px}.firing{color:#b23a48;font-weight:600}
"""


def esc(value: object) -> str:
    return html.escape(str(value))


def money(value: float) -> str:
    return f"${value:,.4f}" if abs(value) < 100 else f"${value:,.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    if not rows:
        return '<p class="note">none</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(title: str, *parts: str, chart: str = "") -> str:
    data = f' data-chart="{esc(chart)}"' if chart else ""
    return f"<section{data}><h2>{esc(title)}</h2>{''.join(parts)}</section>"


def kpis(summary: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    cost = summary["cost"]
    frontier = summary.get("frontier_cost", facts.get("frontier_usd", 0.0))
    saved = f"{1 - cost / frontier:.1%}" if frontier else "n/a"
    quality = summary.get("quality")
    items = [
        ("steps", summary["steps"]),
        ("cost", money(cost)),
        ("all-frontier", money(frontier)),
        ("saved", saved),
        ("quality", "n/a" if quality is None else f"{quality:.1%}"),
        ("cache hit rate", f"{summary['cache_hit_rate']:.1%}"),
        ("escalated steps", summary["escalated_steps"]),
        ("dead letters", summary["dead_letters"]),
        ("shadow spend", money(summary.get("shadow_usd", 0.0))),
    ]
    return (
        '<div class="kpis">'
        + "".join(f'<div class="kpi">{esc(k)}<b>{esc(v)}</b></div>' for k, v in items)
        + "</div>"
    )


def quality_rows(summary: Mapping[str, Any], facts: Mapping[str, Any]) -> list[Any]:
    rows = [("fleet", summary["cost"], summary.get("quality"))]
    if "frontier_cost" in summary:
        rows.append(
            (
                f"all {summary['frontier_model']}",
                summary["frontier_cost"],
                summary.get("frontier_quality"),
            )
        )
    elif facts.get("frontier_usd"):
        rows.append(("all-frontier (priced)", facts["frontier_usd"], None))
    return rows


def per_success_rows(facts: Mapping[str, Any]) -> list[list[object]]:
    rows: list[list[object]] = []
    for name, r in sorted(facts["per_successful_execution"].items()):
        rows.append(
            [
                name,
                int(r["executions"]),
                int(r["succeeded"]),
                money(r["cost_usd"]),
                money(r["cost_per_success_usd"]),
            ]
        )
    return rows


def ok_rows(groups: Mapping[str, Mapping[str, float]]) -> list[list[object]]:
    return [
        [name, int(r["steps"]), int(r["ok"]), money(r["cost_usd"]), money(r["cost_per_ok_usd"])]
        for name, r in sorted(groups.items(), key=lambda kv: -kv[1]["cost_usd"])
    ]


ADVICE_KEYS = ("p50_usd", "p95_usd", "p99_usd", "max_usd", "soft_usd", "hard_usd")


def advice_rows(advice: Mapping[str, Any] | None) -> list[list[object]]:
    if not advice:
        return []
    return [[advice["sessions"], *[money(advice[k]) for k in ADVICE_KEYS]]]


def alert_rows(alerts: Sequence[Mapping[str, Any]]) -> list[list[object]]:
    return [
        [
            time.strftime("%H:%M:%S", time.localtime(a["ts"])),
            a["state"],
            a["rule"] + (f" ({a['subject']})" if a.get("subject") else ""),
            a["summary"],
        ]
        for a in alerts
    ]


def batch_rows(jobs: Sequence[Mapping[str, Any]], now: float) -> list[list[object]]:
    return [[j["job_id"], j["model"], j["state"], f"{now - j['created_at']:.0f} s"] for j in jobs]


def overview(summary: Mapping[str, Any], facts: Mapping[str, Any]) -> list[str]:
    """The headline, cost over time, savings by lever, quality, latency and the cache."""
    return [
        section(
            "headline",
            kpis(summary, facts),
            '<p class="note">'
            + ("SIMULATED provider: illustrative numbers. " if summary.get("simulated") else "")
            + f"{facts['frontier_priced_steps']} steps priced against the frontier model.</p>",
        ),
        section(
            "cost over time", charts.cost_over_time(facts["cost_over_time"]), chart="cost_over_time"
        ),
        section(
            "savings by lever",
            charts.savings_by_lever(
                facts["savings_by_lever"],
                summary["cost"],
                facts["frontier_usd"],
            ),
            '<p class="note">Each lever against sending the step uncached and uncompressed to '
            "the frontier model; routing counts every call, escalations included.</p>",
            chart="savings_by_lever",
        ),
        section(
            "quality beside cost",
            charts.quality_beside_cost(quality_rows(summary, facts)),
            chart="quality",
        ),
        section(
            "latency percentiles per lane",
            charts.latency_by_lane(facts["latency_by_lane"]),
            chart="latency",
        ),
        section("cache", charts.cache_layers(facts["cache_layers"]), chart="cache"),
    ]


def details(
    summary: Mapping[str, Any],
    facts: Mapping[str, Any],
    alerts: Sequence[Mapping[str, Any]],
    batch_jobs: Sequence[Mapping[str, Any]],
) -> list[str]:
    """The model mix, cost per success, session budgets, batch jobs and alerts."""
    now = time.time()
    advice = facts.get("budget_advice")
    by_model = summary.get("by_model", {})
    per_success = {
        k: v["cost_per_success_usd"] for k, v in facts["per_successful_execution"].items()
    }
    per_kind = {k: v["cost_per_ok_usd"] for k, v in facts["by_task_kind"].items()}
    return [
        section(
            "model mix",
            charts.bars(summary["model_mix"], "steps answered per model", "steps"),
            table(
                ["model", "calls", "tokens in", "tokens out", "cost"],
                [
                    [
                        m,
                        int(r["calls"]),
                        int(r["tokens_in"]),
                        int(r["tokens_out"]),
                        money(r["cost_usd"]),
                    ]
                    for m, r in sorted(by_model.items())
                ],
            ),
            chart="model_mix",
        ),
        section(
            "cost per successful execution",
            charts.bars(
                per_success, "per workflow (producer-reported runs)", "$ per successful run"
            ),
            table(
                ["workflow", "runs", "succeeded", "cost", "per success"], per_success_rows(facts)
            ),
            charts.bars(per_kind, "per task kind (answered steps)", "$ per answered step"),
            table(
                ["task kind", "steps", "answered", "cost", "per answered"],
                ok_rows(facts["by_task_kind"]),
            ),
            chart="per_success",
        ),
        section(
            "budget use per session",
            charts.session_budgets(facts["session_spend"], advice),
            table(
                ["sessions", "p50", "p95", "p99", "max", "soft (p95)", "hard (p99 x1.25)"],
                advice_rows(advice),
            ),
            chart="budgets",
        ),
        section("batch jobs", table(["job", "model", "state", "age"], batch_rows(batch_jobs, now))),
        section("alerts", table(["when", "state", "alert", "summary"], alert_rows(alerts))),
    ]


def render_html(
    summary: Mapping[str, Any],
    facts: Mapping[str, Any],
    *,
    title: str = "tierfleet report",
    alerts: Sequence[Mapping[str, Any]] = (),
    batch_jobs: Sequence[Mapping[str, Any]] = (),
) -> str:
    sections = overview(summary, facts) + details(summary, facts, alerts, batch_jobs)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
        f"<style>{STYLE}</style></head><body><header><h1>{esc(title)}</h1>"
        f"<div>{esc(stamp)}</div></header><main>{''.join(sections)}</main></body></html>\n"
    )
