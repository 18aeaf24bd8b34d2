"""The alert rules: each fires on the facts it watches and only then, and the shipped
Prometheus rules file is the table rendered with the default thresholds."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from policies.alert_checks import AlertThresholds, Facts
from policies.alerts import RULES, changes, evaluate, prometheus_rules
from queues.records import LedgerEntry

RULES_FILE = Path(__file__).parents[2] / "monitoring" / "prometheus" / "alerts.yml"


def entry(i: int, **fields) -> LedgerEntry:
    base = {"step_id": f"s{i}", "tenant": "t", "session_id": f"sess{i % 10}", "lane": "standard"}
    return LedgerEntry.model_validate({**base, "latency_ms": 200.0, "cost_usd": 0.001, **fields})


def names(firing) -> set[str]:
    return {f.key for f in firing}


def test_a_quiet_fleet_fires_nothing():
    calm = [entry(i) for i in range(50)]
    assert evaluate(Facts(calm, calm), AlertThresholds()) == []


def test_a_latency_spike_fires_for_its_lane_and_clears():
    spike = [entry(i, latency_ms=90_000.0) for i in range(30)]
    fired = evaluate(Facts(spike, []), AlertThresholds())
    assert names(fired) == {"StepLatencyP95High:standard"}
    active = {f.key: f for f in fired}
    new, resolved = changes(active, evaluate(Facts([entry(1)], spike), AlertThresholds()))
    assert new == [] and [r.key for r in resolved] == ["StepLatencyP95High:standard"]


def test_each_rule_fires_on_what_it_watches():
    t = AlertThresholds()
    trailing = [entry(i, cache_hit=i % 2 == 0) for i in range(40)]
    misses = [entry(i) for i in range(40)]
    assert "CacheHitRateFalling" in names(evaluate(Facts(misses, trailing), t))
    escalating = [entry(i, escalations=1) for i in range(40)]
    assert "EscalationRateRising" in names(evaluate(Facts(escalating, misses), t))
    dead = [*misses, entry(99, status="dead_lettered")]
    assert "DeadLettersAppearing" in names(evaluate(Facts(dead, misses), t))
    over = [*misses, entry(98, overshoot_usd=0.01)]
    assert "BudgetOvershoot" in names(evaluate(Facts(over, misses), t))
    costly = [entry(i, cost_usd=1.0) for i in range(40)]
    assert "SessionCostP95High" in names(evaluate(Facts(costly, misses), t))
    aged = Facts(misses, misses, queue_age_s={"tf.compress": 600.0, "tf.infer.cheap.batch": 1e4})
    assert names(evaluate(aged, t)) == {"QueueAgeGrowing:tf.compress"}
    stuck = Facts(misses, misses, batch_job_age_s={"submitted": 30 * 3600.0})
    assert names(evaluate(stuck, t)) == {"BatchJobStuck:submitted"}


def test_rates_over_too_few_steps_say_nothing():
    few = [entry(i, escalations=2) for i in range(5)]
    assert evaluate(Facts(few, []), AlertThresholds()) == []


def test_the_shipped_rules_file_is_the_table_with_default_thresholds():
    assert RULES_FILE.read_text() == prometheus_rules(AlertThresholds())
    doc = yaml.safe_load(RULES_FILE.read_text())
    rules = doc["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == {rule.name for rule in RULES}
    for rule in rules:
        assert rule["expr"] and rule["labels"]["severity"] in ("warning", "critical")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules_file():
    checked = subprocess.run(
        ["promtool", "check", "rules", str(RULES_FILE)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_rise_needs_a_trailing_rate_to_rise_from():
    escalating = [entry(i, escalations=1) for i in range(40)]
    assert evaluate(Facts(escalating, []), AlertThresholds()) == []
