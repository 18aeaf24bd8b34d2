"""``tierfleet bench prefix-cache``: what prompt assembly does to the providers' prefix
caches, on recorded tau-bench sessions run through the real fleet against the provider test
server (OpenAI and Anthropic APIs, their cache rules, billed at published prices).

Each configuration runs every session in order (a session's next call waits for the last):

- ``rolling``: the common recipe: the history window slides by one message every call and
  no Anthropic ``cache_control`` breakpoints are set;
- ``rolling+breakpoints``: the rolling window with breakpoints (what the window alone costs);
- ``prefix-stable``: tierfleet's default: the window moves in steps (``window_stride``),
  breakpoints sit on the tools, the system prompt and the newest message, and each tier's
  call carries the pruned or the whole history, whichever its cache prices bill least;
- ``one-plan``: the same with the pruned history for every tier;
- ``full-history``: no window at all (every earlier message is sent), with breakpoints.

Half the sessions go to gpt-4o-mini (OpenAI), half to claude-haiku-4-5 (Anthropic); by
default the report half of the tasks (``producers.recorded.session_split``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from policies.tables import TABLES
from producers.fakes.provider_server.serve import RunningServer, serve_in_thread
from producers.fakes.provider_server.server import ProviderServer
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.recorded import tau_bench_workload
from producers.report import by_model, cached_share, percentile
from producers.runner import run_workload
from producers.workloads import Workload
from queues.base import Usage
from queues.records import LedgerEntry
from queues.settings import Settings

PROVIDERS_TABLE = TABLES / "providers.toml"
# tool_call routes to the cheap tier (OpenAI), plan to the mid tier (Anthropic).
KINDS = ("tool_call", "plan")
LOCAL_KEY = "sk-local-provider-test-server"

CONFIGS: dict[str, dict[str, Any]] = {
    "rolling": {
        "window_stride": 1,
        "prompt_cache_breakpoints": False,
        "history_by_cache_prices": False,
    },
    # Separates the window's share of the gain.
    "rolling+breakpoints": {"window_stride": 1, "history_by_cache_prices": False},
    # The defaults: the window moves in steps, and each tier's call carries the pruned or the
    # whole history, whichever its cache prices bill least (policies/history_plan.py).
    "prefix-stable": {},
    "one-plan": {"history_by_cache_prices": False},  # the same pruned history for every tier
    "full-history": {"keep_last_messages": 1_000_000},
}


def _settings(base: Settings, server: RunningServer, overrides: dict[str, Any]) -> Settings:
    return base.model_copy(
        update={
            "tier_table": PROVIDERS_TABLE,
            "openai_api_key": LOCAL_KEY,
            "anthropic_api_key": LOCAL_KEY,
            "openai_base_url": server.openai_base_url,
            "anthropic_base_url": server.url,
            **overrides,
        }
    )


def _figures(ledger: list[LedgerEntry], bill: dict[str, Any], seconds: float) -> dict[str, Any]:
    used = Usage.total(ledger)
    tokens_in, cached = used.tokens_in, used.tokens_cached
    cost = sum(e.cost_usd for e in ledger)
    sessions: dict[str, list[int]] = {}
    for e in ledger:
        got = sessions.setdefault(e.session_id, [0, 0])
        got[0] += e.tokens_cached
        got[1] += e.tokens_in
    shares = [cached_share(c, n) for c, n in sessions.values()]
    models = by_model(ledger)
    return {
        "steps": len(ledger),
        "ok": sum(e.status == "ok" for e in ledger),
        "tokens_in": tokens_in,
        "tokens_cached": cached,
        "tokens_cache_write": used.tokens_cache_write,
        "cached_share": cached_share(cached, tokens_in),
        "session_cached_share_p50": percentile(shares, 50),
        "cost_usd": round(cost, 6),
        "provider_bill_usd": round(bill["total_usd"], 6),
        "ledger_vs_bill": round(cost / bill["total_usd"] - 1, 6) if bill["total_usd"] else 0.0,
        "by_model": {
            model: {
                "calls": int(row["calls"]),
                "cached_share": cached_share(row["tokens_cached"], row["tokens_in"]),
                "cost_usd": round(row["cost_usd"], 6),
            }
            for model, row in models.items()
        },
        "seconds": round(seconds, 1),
    }


def run_config(
    name: str, workload: Workload, base: Settings, server: RunningServer
) -> dict[str, Any]:
    server.server.account.reset()  # nothing cached, nothing billed yet
    settings = _settings(base, server, CONFIGS[name])
    with LocalFleet(settings) as local, Fleet(local.settings) as fleet:
        started = time.perf_counter()
        results = run_workload(fleet, workload, timeout_s=900)
        seconds = time.perf_counter() - started
        ids = {r.step_id for r in results}
        ledger = [e for e in fleet.ledger() if e.step_id in ids]
    return _figures(ledger, server.server.account.bill.snapshot(), seconds)


def bench_prefix_cache(
    workload_path: Path,
    sessions: int | None,
    base: Settings,
    configs: list[str],
    split: str = "report",
) -> dict[str, Any]:
    workload = tau_bench_workload(workload_path, sessions, KINDS, split)
    running = serve_in_thread(ProviderServer())
    try:
        runs = {name: run_config(name, workload, base, running) for name in configs}
    finally:
        running.stop()
    figures: dict[str, Any] = {
        "workload": str(workload_path),
        "split": split,
        "sessions": len(workload.sessions),
        "calls": len(workload.steps),
        "prices": "published (producers/fakes/provider_server/billing.py)",
        "configs": runs,
    }
    if "rolling" in runs and "prefix-stable" in runs:
        before, after = runs["rolling"]["cost_usd"], runs["prefix-stable"]["cost_usd"]
        figures["prefix_stable_cost_reduction"] = round(1 - after / before, 4) if before else 0.0
    return figures
