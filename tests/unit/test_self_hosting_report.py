"""The report's self-hosting section over a ledger with local calls."""

import io

import pytest
from rich.console import Console

from policies.tables import TABLES
from policies.tiers import load_tier_table
from producers.self_hosting_report import render_self_hosting, summarize_self_hosting
from queues.records import LedgerCall, LedgerEntry

LOCAL = "local/smollm2-135m"


def entry(i: int, *calls: LedgerCall) -> LedgerEntry:
    return LedgerEntry(step_id=f"s{i}", tenant="t", calls=calls, cost_usd=0.0)


def test_each_local_model_is_priced_at_its_measured_throughput_beside_the_apis():
    table = load_tier_table(TABLES / "local.toml")
    local = [
        LedgerCall(model=LOCAL, tokens_in=900, tokens_out=100, engine_s=4.0, queue_wait_s=w)
        for w in (0.5, 1.0, 3.0)
    ]
    api = LedgerCall(model="sim/gpt-4o", tokens_in=900, tokens_out=100, cost_usd=0.003)
    summary = summarize_self_hosting(
        [entry(i, c) for i, c in enumerate(local)] + [entry(9, api)], table
    )
    assert list(summary) == [LOCAL]  # API calls are not self-hosted
    row = summary[LOCAL]
    assert row["calls"] == 3 and row["tokens_per_s"] == pytest.approx(250.0)
    assert row["cost_per_mtok_usd"] == pytest.approx(0.05 / 3600 / 250 * 1e6, abs=1e-4)
    assert row["queue_wait_p50_s"] == 1.0 and row["queue_wait_p95_s"] == 3.0
    assert set(row["apis"]) == {"sim/claude-3-5-haiku", "sim/gpt-4o"}
    gpt4o = row["apis"]["sim/gpt-4o"]
    assert gpt4o["api_usd_per_mtok"] == pytest.approx(0.9 * 2.5 + 0.1 * 10.0)
    assert gpt4o["breakeven_tokens_per_day"] == pytest.approx(1.2 / 3.25 * 1e6, rel=1e-5)
    out = io.StringIO()
    render_self_hosting(summary, Console(file=out, width=140))
    text = out.getvalue()
    assert "per million tokens" in text and "sim/gpt-4o" in text and "369k" in text


def test_no_local_calls_no_section():
    table = load_tier_table(TABLES / "local.toml")
    assert summarize_self_hosting([], table) == {}
