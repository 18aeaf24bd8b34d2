"""The report's self-hosting section: per local model in the ledger, the throughput its
engine measured, its cost per million tokens fully busy, how long steps waited for it, and
beside it each API model of the tier table with its price and the break-even volume."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from policies.self_hosting import Throughput, self_hosting, total
from policies.tiers import TierTable
from producers.bill import calls_of
from producers.report import percentile
from queues.records import LedgerCall, LedgerEntry


def summarize_self_hosting(
    entries: Sequence[LedgerEntry], table: TierTable
) -> dict[str, dict[str, Any]]:
    """Figures per local model that answered calls in ``entries`` (none: an empty dict)."""
    calls: dict[str, list[LedgerCall]] = defaultdict(list)
    for entry in entries:
        for call in calls_of(entry):
            spec = table.models.get(call.model)
            if spec is not None and spec.local is not None and call.engine_s > 0:
                calls[call.model].append(call)
    apis = {name: spec.price for name, spec in table.models.items() if spec.local is None}
    out: dict[str, dict[str, Any]] = {}
    for model, made in sorted(calls.items()):
        local = table.models[model].local
        assert local is not None  # only local models were collected
        measured = total(
            Throughput(c.tokens_in, c.tokens_out, c.engine_s, c.tokens_cached) for c in made
        )
        waits = [c.queue_wait_s for c in made]
        out[model] = {
            "calls": len(made),
            "engine": local.engine,
            "queue_wait_p50_s": round(percentile(waits, 50), 3),
            "queue_wait_p95_s": round(percentile(waits, 95), 3),
            **self_hosting(local.hourly_usd, measured, apis),
        }
    return out


def _volume(tokens: float | None) -> str:
    if tokens is None:
        return "never"
    return f"{tokens / 1e6:,.1f}M" if tokens >= 1e6 else f"{tokens / 1e3:,.0f}k"


def render_self_hosting(summary: dict[str, dict[str, Any]], console: Console) -> None:
    for model, row in summary.items():
        per_mtok = row["cost_per_mtok_usd"]
        console.print(
            f"[bold]{model}[/] ({row['engine']} engine, ${row['hourly_usd']}/h): "
            f"{row['tokens_per_s']:.0f} tokens/s over {row['calls']} calls, "
            f"${per_mtok if per_mtok is not None else 0:.4f} per million tokens fully busy, "
            f"{_volume(row['capacity_tokens_per_day'])} tokens/day per machine; "
            f"queue wait p50 {row['queue_wait_p50_s']:.2f} s, p95 {row['queue_wait_p95_s']:.2f} s"
        )
        apis = Table(title=f"self-hosting {model} against the API models")
        for col in ("API model", "$ per Mtok (this mix)", "break-even tokens/day"):
            apis.add_column(col, justify="left" if col == "API model" else "right")
        for name, api in row["apis"].items():
            apis.add_row(
                name,
                f"{api['api_usd_per_mtok']:.3f}",
                _volume(api["breakeven_tokens_per_day"]),
            )
        console.print(apis)
