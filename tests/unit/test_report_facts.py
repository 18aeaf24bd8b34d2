"""The report's further facts: savings split by lever add up, budget advice from session
spend, cost per successful execution from producers' word, bounded metric labels."""

import pytest

from policies.budgets import recommend_budgets
from policies.metric_labels import OTHER, LabelCap, reason_class
from policies.savings import LEVERS, lever_savings
from policies.tables import TABLES
from policies.tiers import load_tier_table
from producers.report_facts import per_ok_step, per_successful_execution, report_facts
from queues.records import ExecutionRecord, LedgerCall, LedgerEntry

TABLE = load_tier_table(TABLES / "providers.toml")  # real prices, batch discounts included
FRONTIER = TABLE.model_of(TABLE.top.name)
CHEAP = TABLE.model_of(TABLE.names[0])


def paid(frontier_in: int = 2000, sent_in: int = 1200, out: int = 100, **call) -> LedgerEntry:
    fields = {"tokens_in": sent_in, "tokens_out": out, "accepted": True, **call}
    model = TABLE.models[fields.get("model", CHEAP.name)]
    fields["model"] = model.name
    cost = model.cost(
        fields["tokens_in"], out, fields.get("tokens_cached", 0), batch=fields.get("batch", False)
    )
    return LedgerEntry(
        step_id="s",
        tenant="t",
        session_id="x",
        cost_usd=cost,
        calls=(LedgerCall(cost_usd=cost, **fields),),
        frontier_usd=FRONTIER.cost(frontier_in, out),
    )


def test_the_levers_add_up_to_the_frontier_price_less_the_cost():
    entry = paid(tokens_cached=800, batch=True)
    saved = lever_savings(entry, TABLE.models, FRONTIER)
    assert set(saved) == set(LEVERS)
    assert sum(saved.values()) == pytest.approx(entry.frontier_usd - entry.cost_usd)
    assert saved["compression"] == pytest.approx(FRONTIER.cost(800, 0))
    assert saved["routing"] > 0 and saved["prefix_cache"] > 0 and saved["batch_lane"] > 0


def test_an_escalation_shows_as_routing_that_saved_less():
    cheap_only = paid()
    failed = LedgerCall(model=CHEAP.name, tokens_in=1200, tokens_out=100, cost_usd=0.0)
    top = LedgerCall(
        model=FRONTIER.name,
        tokens_in=1200,
        tokens_out=100,
        accepted=True,
        cost_usd=FRONTIER.cost(1200, 100),
    )
    escalated = cheap_only.model_copy(
        update={"calls": (failed, top), "cost_usd": FRONTIER.cost(1200, 100)}
    )
    routed = lever_savings(cheap_only, TABLE.models, FRONTIER)["routing"]
    assert lever_savings(escalated, TABLE.models, FRONTIER)["routing"] < routed


def test_a_cache_hit_saved_the_whole_frontier_price_in_its_layer():
    hit = LedgerEntry(step_id="h", cache_hit=True, frontier_usd=0.01)
    assert lever_savings(hit, TABLE.models, FRONTIER)["exact_cache"] == 0.01


def test_budget_advice_reads_the_p95_and_p99_of_session_spend():
    advice = recommend_budgets([i / 100 for i in range(1, 101)])
    assert advice is not None and advice.sessions == 100
    assert advice.soft_usd == advice.p95_usd == pytest.approx(0.95, abs=0.011)
    assert advice.hard_usd == pytest.approx(advice.p99_usd * 1.25)
    assert recommend_budgets([]) is None


def test_cost_per_successful_execution_divides_by_the_runs_that_succeeded():
    entries = [
        LedgerEntry(
            step_id=f"{s}{i}",
            tenant="t",
            session_id=s,
            workflow="w",
            task_kind="chat",
            cost_usd=1.0,
        )
        for s in ("a", "b", "c")
        for i in range(2)
    ]
    runs = [
        ExecutionRecord(tenant="t", workflow="w", session_id="a", succeeded=False),
        ExecutionRecord(tenant="t", workflow="w", session_id="a", succeeded=True),  # last word
        ExecutionRecord(tenant="t", workflow="w", session_id="b", succeeded=False),
    ]
    row = per_successful_execution(entries, runs)["w"]
    assert (row["executions"], row["succeeded"], row["cost_usd"]) == (2, 1, 4.0)
    assert row["cost_per_success_usd"] == 4.0
    dead = LedgerEntry(step_id="d", task_kind="chat", status="dead_lettered", cost_usd=0.5)
    kinds = per_ok_step([*entries, dead], "task_kind")
    assert kinds["chat"]["ok"] == 6 and kinds["chat"]["cost_per_ok_usd"] == pytest.approx(6.5 / 6)


def test_report_facts_hold_every_section_the_page_draws():
    facts = report_facts([paid(), paid(sent_in=900)], TABLE)
    for key in ("by_task_kind", "latency_by_lane", "savings_by_lever", "cost_over_time"):
        assert facts[key]
    assert facts["frontier_priced_steps"] == 2 and facts["cache_layers"]["miss"] == 2


def test_labels_stay_bounded_and_reasons_fall_into_classes():
    cap = LabelCap(2)
    assert [cap("tenant", t) for t in ("a", "b", "c", "a")] == ["a", "b", OTHER, "a"]
    assert reason_class("cheap rejected (schema violation at (root): x) -> mid") == "schema"
    assert reason_class("retries exhausted (4): transient: provider 503") == "retries_exhausted"
    assert reason_class("hard session budget refuses $0.01") == "budget"
    assert reason_class("something new") == OTHER
