"""Reports over the cost ledger: totals, quality, model mix, latency, and attribution by
tenant, agent, workflow and session."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from producers.baseline import Baseline
from producers.bill import calls_of, summarize_bill
from queues.base import Usage
from queues.records import LedgerEntry, ShadowRecord


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return float(ordered[rank])


def unique_steps(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """One entry per step. A step is its tenant and its id: two tenants may use the same
    id. A step with two entries (a redelivered finalize, or a dead letter replayed as a new
    run) keeps the later entry, paying for every distinct call of both."""
    merged: dict[tuple[str, str], LedgerEntry] = {}
    for entry in entries:
        key = entry.key
        merged[key] = entry if key not in merged else _runs_of(merged[key], entry)
    return list(merged.values())


def _runs_of(earlier: LedgerEntry, later: LedgerEntry) -> LedgerEntry:
    calls = [*calls_of(earlier), *calls_of(later)]
    if not calls or not all(c.call_id for c in calls):
        return later  # entries from before call ids: the later one stands
    distinct = list({c.call_id: c for c in calls}.values())
    paid = Usage.total(distinct).usage_fields()
    return later.model_copy(
        update={
            **paid,
            "cost_usd": sum(c.cost_usd for c in distinct),
            "calls": tuple(distinct),
            "attempts": len(distinct),
        }
    )


def attribute(entries: Sequence[LedgerEntry], key: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(
        lambda: {"steps": 0, "cost_usd": 0.0, "tokens_in": 0, "tokens_out": 0, "tokens_cached": 0}
    )
    for e in entries:
        row = out[str(getattr(e, key))]
        row["steps"] += 1
        row["cost_usd"] += e.cost_usd
        row["tokens_in"] += e.tokens_in
        row["tokens_out"] += e.tokens_out
        row["tokens_cached"] += e.tokens_cached
    return dict(out)


MODEL_COLUMNS = (
    "calls",
    "batch_calls",
    "tokens_in",
    "tokens_cached",
    "tokens_cache_write",
    "tokens_out",
    "cost_usd",
)


def by_model(entries: Iterable[LedgerEntry]) -> dict[str, dict[str, float]]:
    """Calls, tokens and dollars per model, every attempt counted: what each provider bills."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(MODEL_COLUMNS, 0))
    for entry in entries:
        for call in calls_of(entry):
            row = out[call.model]
            row["calls"] += 1
            row["batch_calls"] += int(call.batch)
            for key, value in call.usage_fields().items():
                row[key] += value
            row["cost_usd"] += call.cost_usd
    return dict(out)


def cached_share(tokens_cached: float, tokens_in: float) -> float:
    return round(tokens_cached / tokens_in, 4) if tokens_in else 0.0


def summarize(
    entries: Iterable[LedgerEntry],
    baseline: Baseline | None = None,
    calls: Iterable[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    steps = unique_steps(entries)
    n = len(steps)
    cost = sum(e.cost_usd for e in steps)
    # Quality is over the steps that were answered or failed; a budget stop is the budget's
    # doing, not the answer's, and is counted apart (budget_stops), as the baseline has none.
    known = [
        e
        for e in steps
        if e.status != "budget_exceeded" and (e.correct is not None or e.status != "ok")
    ]
    good = sum(1 for e in known if e.status == "ok" and e.correct)
    latencies = [e.latency_ms for e in steps]
    used = Usage.total(steps)
    summary: dict[str, Any] = {
        "steps": n,
        "simulated": any(e.simulated for e in steps),
        "cost": round(cost, 8),
        "quality": round(good / len(known), 4) if known else None,
        # Steps whose answer is labelled right or wrong (a local model's answers are not):
        # the quality above is over these alone.
        "labelled_steps": len(known),
        "cache_hit_rate": round(sum(e.cache_hit for e in steps) / n, 4) if n else 0.0,
        "semantic_hits": sum(1 for e in steps if e.semantic),
        "escalations": sum(e.escalations for e in steps),
        "escalated_steps": sum(1 for e in steps if e.escalations),
        "budget_stops": sum(1 for e in steps if e.status == "budget_exceeded"),
        # Spent beyond what the calls had reserved: past a hard limit's guarantee, so shown.
        "overshoot_usd": round(sum(e.overshoot_usd for e in steps), 8),
        "overshoot_calls": sum(1 for e in steps for c in calls_of(e) if c.overshoot_usd > 0),
        "dead_letters": sum(1 for e in steps if e.status == "dead_lettered"),
        "model_mix": dict(Counter(e.model or "(no answer)" for e in steps).most_common()),
        "tokens_in": used.tokens_in,
        "cached_share": cached_share(used.tokens_cached, used.tokens_in),
        "tokens_out": used.tokens_out,
        "tokens_cached": used.tokens_cached,
        "by_model": by_model(steps),
        "latency_p50_ms": round(percentile(latencies, 50), 1),
        "latency_p95_ms": round(percentile(latencies, 95), 1),
    }
    if calls is not None:
        summary["bill"] = summarize_bill(calls, steps)
    # The semantic cache's judge calls are a cost of serving from it: in the savings.
    audits = summary["bill"]["audit_usd"] if calls is not None else 0.0
    summary["audit_usd"] = audits
    if baseline is not None:
        summary.update(
            frontier_model=baseline.model,
            frontier_cost=round(baseline.cost_usd, 8),
            frontier_quality=round(baseline.quality, 4) if baseline.quality is not None else None,
            savings_pct=round(100 * (1 - (cost + audits) / baseline.cost_usd), 2)
            if baseline.cost_usd
            else 0.0,
        )
    return summary


def _quality(value: float | None, labelled: int | None = None, steps: int = 0) -> str:
    if value is None:
        return "n/a (no labels)"
    if labelled is not None and labelled < steps:
        return f"{value:.1%} (of the {labelled} of {steps} steps with labels)"
    return f"{value:.1%}"


def render(summary: dict[str, Any], console: Console, title: str = "tierfleet report") -> None:
    label = " [SIMULATED provider: illustrative numbers]" if summary.get("simulated") else ""
    table = Table(title=title + label, show_header=False)
    table.add_row("steps", str(summary["steps"]))
    if "frontier_cost" in summary:
        audits = summary.get("audit_usd", 0.0)
        table.add_row(
            "cost (fleet)",
            f"${summary['cost']:.4f}"
            + (f" + ${audits:.4f} cache audits" if audits else "")
            + "  quality "
            + _quality(summary["quality"], summary.get("labelled_steps"), summary["steps"]),
        )
        table.add_row(
            f"cost (all {summary['frontier_model']})",
            f"${summary['frontier_cost']:.4f}  quality {_quality(summary['frontier_quality'])}",
        )
        table.add_row("savings", f"{summary['savings_pct']:.1f}% at the quality shown above")
    else:
        quality = _quality(summary["quality"], summary.get("labelled_steps"), summary["steps"])
        table.add_row("cost", f"${summary['cost']:.4f}  quality {quality}")
    table.add_row("cache hit rate", f"{summary['cache_hit_rate']:.1%}")
    table.add_row("escalations", f"{summary['escalations']} ({summary['escalated_steps']} steps)")
    table.add_row(
        "budget stops",
        f"{summary['budget_stops']} (apart from quality: the baseline runs without budgets)",
    )
    table.add_row(
        "budget overshoot",
        f"${summary.get('overshoot_usd', 0.0):.6f} over reservations "
        f"({summary.get('overshoot_calls', 0)} calls)",
    )
    table.add_row("dead letters", str(summary["dead_letters"]))
    if bill := summary.get("bill"):
        table.add_row("provider bill", _bill_line(bill))
    table.add_row(
        "latency p50 / p95", f"{summary['latency_p50_ms']:.0f} / {summary['latency_p95_ms']:.0f} ms"
    )
    table.add_row(
        "tokens in / out / cached",
        f"{summary['tokens_in']} / {summary['tokens_out']} / {summary['tokens_cached']}",
    )
    console.print(table)
    render_mix(summary, console)


def _bill_line(bill: dict[str, Any]) -> str:
    return (
        f"${bill['billed_usd']:.6f} for {bill['provider_calls']} calls: "
        f"{bill['duplicate_calls']} made twice (${bill['duplicate_usd']:.6f}), "
        f"{bill['calls_outside_steps']} on no step (${bill['outside_usd']:.6f}), "
        f"{bill['shadow_calls']} shadow (${bill['shadow_usd']:.6f}), "
        f"{bill.get('audit_calls', 0)} cache audits (${bill.get('audit_usd', 0.0):.6f}), "
        f"{bill['unconfirmed_calls']} unconfirmed (estimated ${bill['unconfirmed_usd']:.6f},"
        f" at most ${bill['unconfirmed_worst_usd']:.6f})"
    )


def render_mix(summary: dict[str, Any], console: Console) -> None:
    """The model mix (steps per answering model) and the cost by model (every call)."""
    mix = Table(title="model mix")
    mix.add_column("model")
    mix.add_column("steps", justify="right")
    for model, count in summary["model_mix"].items():
        mix.add_row(model, str(count))
    console.print(mix)
    if not summary.get("by_model"):
        return
    bill = Table(title="cost by model (every call, failed attempts included)")
    for col in ("model", "calls", "batch", "tokens in", "cached %", "tokens out", "cost $"):
        bill.add_column(col, justify="left" if col == "model" else "right", no_wrap=True)
    for model, row in sorted(summary["by_model"].items()):
        bill.add_row(
            model,
            str(int(row["calls"])),
            str(int(row["batch_calls"])),
            str(int(row["tokens_in"])),
            f"{cached_share(row['tokens_cached'], row['tokens_in']):.1%}",
            str(int(row["tokens_out"])),
            f"{row['cost_usd']:.6f}",
        )
    console.print(bill)


def render_attribution(entries: Sequence[LedgerEntry], console: Console, top: int = 10) -> None:
    for key in ("tenant", "agent", "workflow", "session_id"):
        rows = sorted(attribute(entries, key).items(), key=lambda kv: -kv[1]["cost_usd"])[:top]
        table = Table(title=f"cost by {key}")
        for col in (key, "steps", "cost $", "tokens in", "cached %", "tokens out"):
            table.add_column(col, justify="left" if col == key else "right")
        for name, row in rows:
            table.add_row(
                name,
                str(int(row["steps"])),
                f"{row['cost_usd']:.6f}",
                str(int(row["tokens_in"])),
                f"{cached_share(row['tokens_cached'], row['tokens_in']):.1%}",
                str(int(row["tokens_out"])),
            )
        console.print(table)


def summarize_shadow(records: Sequence[ShadowRecord]) -> dict[str, Any]:
    """Agreement of accepted cheaper answers with the top tier's, overall and by model and
    task kind: the quality signal where no labels exist."""

    def rate(rows: Sequence[ShadowRecord]) -> dict[str, Any]:
        return {
            "samples": len(rows),
            "agreement": round(sum(r.agree for r in rows) / len(rows), 4) if rows else None,
            "cost_usd": round(sum(r.cost_usd for r in rows), 6),
        }

    groups: dict[str, dict[str, list[ShadowRecord]]] = {
        "by_model": defaultdict(list),
        "by_task_kind": defaultdict(list),
    }
    for r in records:
        groups["by_model"][r.accepted_model].append(r)
        groups["by_task_kind"][r.task_kind].append(r)
    return {
        **rate(records),
        **{name: {k: rate(v) for k, v in sorted(g.items())} for name, g in groups.items()},
    }


def render_shadow(summary: dict[str, Any], console: Console) -> None:
    table = Table(title=f"shadow evaluation: {summary['samples']} samples")
    for col in ("accepted model / task kind", "samples", "agreement with the top tier"):
        table.add_column(col, justify="left" if col.startswith("accepted") else "right")
    for group in ("by_model", "by_task_kind"):
        for name, row in summary[group].items():
            table.add_row(name, str(row["samples"]), f"{row['agreement']:.1%}")
    console.print(table)
