"""The fleet's alert rules, one table for both places they run: rendered as a Prometheus
rules file (PromQL over the workers' metrics) and evaluated by the fleet itself over its
ledger, for an embedded fleet with no Prometheus (``workers.alerting``). Each rule says what
it watches in both languages; thresholds come in as data."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from policies.alert_checks import (
    AlertThresholds,
    Facts,
    Firing,
    batch_job_age,
    budget_overshoot,
    cache_hit_drop,
    dead_letters,
    escalation_rise,
    latency_p95,
    queue_age,
    session_cost_p95,
)

Check = Callable[[Facts, AlertThresholds], list[Firing]]


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str
    description: str
    promql: Callable[[AlertThresholds], list[tuple[str, str]]]  # (subject, expression)
    check: Check
    for_: str = "5m"


def _rate(metric: str, selector: str = "", window: str = "5m") -> str:
    return f"sum(rate({metric}{{{selector}}}[{window}]))"


def _hits(window: str) -> str:
    hits = _rate("tierfleet_cache_lookups_total", 'layer!="miss"', window)
    return f"({hits} / {_rate('tierfleet_cache_lookups_total', '', window)})"


RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "StepLatencyP95High",
        "warning",
        "P95 step latency (submit to finalize) of a lane over its limit",
        lambda t: [
            (
                lane,
                "histogram_quantile(0.95, sum by (le) (rate(tierfleet_step_seconds_bucket"
                f'{{lane="{lane}"}}[5m]))) > {limit:g}',
            )
            for lane, limit in sorted(t.latency_p95_s.items())
        ],
        latency_p95,
    ),
    AlertRule(
        "SessionCostP95High",
        "warning",
        "P95 session spend over a multiple of its trailing median (Prometheus sees steps, not "
        "sessions: it compares the step cost's P95 with its trailing median)",
        lambda t: [
            (
                "",
                "histogram_quantile(0.95, sum by (le) (rate(tierfleet_step_cost_usd_bucket[5m])))"
                f" > {t.session_cost_factor:g} * histogram_quantile(0.5, sum by (le) "
                "(rate(tierfleet_step_cost_usd_bucket[1h])))",
            )
        ],
        session_cost_p95,
    ),
    AlertRule(
        "CacheHitRateFalling",
        "warning",
        "cache hit rate under a share of its trailing rate",
        lambda t: [("", f"{_hits('5m')} < {t.cache_hit_drop:g} * {_hits('1h')}")],
        cache_hit_drop,
    ),
    AlertRule(
        "EscalationRateRising",
        "warning",
        "escalations per step over a multiple of the trailing rate",
        lambda t: [
            (
                "",
                f"({_rate('tierfleet_escalations_total')} / {_rate('tierfleet_steps_total')}) > "
                f"{t.escalation_floor:g} and ({_rate('tierfleet_escalations_total')} / "
                f"{_rate('tierfleet_steps_total')}) > {t.escalation_factor:g} * "
                f"({_rate('tierfleet_escalations_total', '', '1h')} / "
                f"{_rate('tierfleet_steps_total', '', '1h')})",
            )
        ],
        escalation_rise,
    ),
    AlertRule(
        "DeadLettersAppearing",
        "critical",
        "steps dead-lettered",
        lambda t: [("", "sum(increase(tierfleet_dead_letters_total[5m])) > 0")],
        dead_letters,
        for_="0m",
    ),
    AlertRule(
        "QueueAgeGrowing",
        "warning",
        "the oldest waiting message of a queue (batch lanes aside) is too old",
        lambda t: [
            (
                "",
                'max by (queue) (tierfleet_queue_oldest_age_seconds{queue!~".*[.]batch"}) > '
                f"{t.queue_age_s:g}",
            )
        ],
        queue_age,
        for_="2m",
    ),
    AlertRule(
        "BatchJobStuck",
        "warning",
        "a provider batch job is older than the provider's window",
        lambda t: [
            ("", f"max by (state) (tierfleet_batch_job_oldest_age_seconds) > {t.batch_job_age_s:g}")
        ],
        batch_job_age,
        for_="10m",
    ),
    AlertRule(
        "BudgetOvershoot",
        "critical",
        "calls cost more than they reserved: past a hard budget's guarantee",
        lambda t: [("", "increase(tierfleet_budget_overshoot_usd_total[5m]) > 0")],
        budget_overshoot,
        for_="0m",
    ),
)


def evaluate(facts: Facts, thresholds: AlertThresholds) -> list[Firing]:
    """Every rule that fires now."""
    return [firing for rule in RULES for firing in rule.check(facts, thresholds)]


def changes(
    active: Mapping[str, Firing], firing: Sequence[Firing]
) -> tuple[list[Firing], list[Firing]]:
    """(newly firing, resolved) between the alerts active before and those firing now."""
    now = {f.key: f for f in firing}
    fired = [f for k, f in now.items() if k not in active]
    resolved = [f for k, f in active.items() if k not in now]
    return fired, resolved


def prometheus_rules(thresholds: AlertThresholds) -> str:
    """The rules as a Prometheus rules file (YAML; strings JSON-quoted, which YAML reads)."""
    lines = [
        "# Generated by `tierfleet alerts rules`: the same rules the fleet evaluates itself.",
        "groups:",
        "  - name: tierfleet",
        "    rules:",
    ]
    for rule in RULES:
        for subject, expr in rule.promql(thresholds):
            lines += [
                f"      - alert: {rule.name}",
                f"        expr: {json.dumps(expr)}",
                f"        for: {rule.for_}",
                "        labels:",
                f"          severity: {rule.severity}",
                *([f"          lane: {subject}"] if subject else []),
                "        annotations:",
                f"          summary: {json.dumps(rule.description)}",
            ]
    return "\n".join(lines) + "\n"
