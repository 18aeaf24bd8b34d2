"""The fleet's alert rules, one table for both places they run: rendered as a Prometheus
rules file (PromQL over the workers' metrics) and evaluated by the fleet itself over its
ledger, for an embedded fleet with no Prometheus (``workers.alerting``). Each rule says what
it watches in both languages; thresholds come in as data."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from queues.records import LedgerEntry


@dataclass(frozen=True)
class AlertThresholds:
    latency_p95_s: Mapping[str, float] = field(
        default_factory=lambda: {"interactive": 10.0, "standard": 60.0, "batch": 86_400.0}
    )
    session_cost_factor: float = 3.0  # P95 session spend over this many trailing medians
    cache_hit_drop: float = 0.5  # hit rate under this share of its trailing rate
    escalation_factor: float = 2.0  # escalations per step over this many times the trailing
    escalation_floor: float = 0.1  # ... and over this rate at all
    queue_age_s: float = 60.0  # oldest waiting message of a live lane's queue
    batch_job_age_s: float = 26 * 3600.0  # provider batch windows are 24 h
    min_steps: int = 20  # rates over fewer steps than this say nothing


@dataclass(frozen=True)
class Facts:
    """What the fleet knows now: ledger entries of the window and of the trailing window
    before it, the oldest waiting message of each queue, the batch jobs' ages."""

    recent: Sequence[LedgerEntry]
    trailing: Sequence[LedgerEntry]
    queue_age_s: Mapping[str, float] = field(default_factory=dict)
    batch_job_age_s: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Firing:
    rule: str
    subject: str  # what it fires for (a lane, a queue), "" for the fleet
    value: float
    threshold: float
    summary: str

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}" if self.subject else self.rule


Check = Callable[[Facts, AlertThresholds], list[Firing]]


@dataclass(frozen=True)
class AlertRule:
    name: str
    severity: str
    description: str
    promql: Callable[[AlertThresholds], list[tuple[str, str]]]  # (subject, expression)
    check: Check
    for_: str = "5m"


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return float(ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))])


def _latency(facts: Facts, t: AlertThresholds) -> list[Firing]:
    by_lane: dict[str, list[float]] = defaultdict(list)
    for e in facts.recent:
        by_lane[e.lane].append(e.latency_ms / 1000)
    out = []
    for lane, limit in sorted(t.latency_p95_s.items()):
        p95 = percentile(by_lane.get(lane, []), 95)
        if p95 > limit:
            summary = f"P95 step latency of the {lane} lane is {p95:.1f} s (limit {limit:g} s)"
            out.append(Firing("StepLatencyP95High", lane, p95, limit, summary))
    return out


def session_spend(entries: Sequence[LedgerEntry]) -> list[float]:
    spend: dict[tuple[str, str], float] = defaultdict(float)
    for e in entries:
        spend[(e.tenant, e.session_id)] += e.cost_usd
    return list(spend.values())


def _session_cost(facts: Facts, t: AlertThresholds) -> list[Firing]:
    recent, trailing = session_spend(facts.recent), session_spend(facts.trailing)
    if len(recent) < 5 or len(trailing) < 5:
        return []
    p95, median = percentile(recent, 95), percentile(trailing, 50)
    limit = t.session_cost_factor * median
    if median <= 0 or p95 <= limit:
        return []
    summary = f"P95 session spend ${p95:.4f} is over {t.session_cost_factor:g}x its trailing median"
    return [Firing("SessionCostP95High", "", p95, limit, summary)]


def hit_rate(entries: Sequence[LedgerEntry]) -> float:
    return sum(e.cache_hit for e in entries) / len(entries) if entries else 0.0


def _cache(facts: Facts, t: AlertThresholds) -> list[Firing]:
    if len(facts.recent) < t.min_steps or len(facts.trailing) < t.min_steps:
        return []
    now, before = hit_rate(facts.recent), hit_rate(facts.trailing)
    limit = t.cache_hit_drop * before
    if before <= 0 or now >= limit:
        return []
    summary = f"cache hit rate fell to {now:.1%} from {before:.1%}"
    return [Firing("CacheHitRateFalling", "", now, limit, summary)]


def escalation_rate(entries: Sequence[LedgerEntry]) -> float:
    return sum(e.escalations for e in entries) / len(entries) if entries else 0.0


def _escalations(facts: Facts, t: AlertThresholds) -> list[Firing]:
    if len(facts.recent) < t.min_steps:
        return []
    now, before = escalation_rate(facts.recent), escalation_rate(facts.trailing)
    limit = max(t.escalation_floor, t.escalation_factor * before)
    if now <= limit:
        return []
    summary = f"{now:.2f} escalations per step (trailing {before:.2f})"
    return [Firing("EscalationRateRising", "", now, limit, summary)]


def _dead(facts: Facts, t: AlertThresholds) -> list[Firing]:
    dead = sum(1 for e in facts.recent if e.status == "dead_lettered")
    if not dead:
        return []
    return [Firing("DeadLettersAppearing", "", dead, 0, f"{dead} steps dead-lettered")]


def _queues(facts: Facts, t: AlertThresholds) -> list[Firing]:
    return [
        Firing("QueueAgeGrowing", q, age, t.queue_age_s, f"{q}: oldest message {age:.0f} s old")
        for q, age in sorted(facts.queue_age_s.items())
        if age > t.queue_age_s and not q.endswith(".batch")
    ]


def _batch(facts: Facts, t: AlertThresholds) -> list[Firing]:
    return [
        Firing("BatchJobStuck", s, age, t.batch_job_age_s, f"a {s} batch job is {age:.0f} s old")
        for s, age in sorted(facts.batch_job_age_s.items())
        if age > t.batch_job_age_s
    ]


def _overshoot(facts: Facts, t: AlertThresholds) -> list[Firing]:
    over = sum(e.overshoot_usd for e in facts.recent)
    if over <= 0:
        return []
    return [Firing("BudgetOvershoot", "", over, 0, f"${over:.6f} spent beyond reservations")]


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
        _latency,
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
        _session_cost,
    ),
    AlertRule(
        "CacheHitRateFalling",
        "warning",
        "cache hit rate under a share of its trailing rate",
        lambda t: [("", f"{_hits('5m')} < {t.cache_hit_drop:g} * {_hits('1h')}")],
        _cache,
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
        _escalations,
    ),
    AlertRule(
        "DeadLettersAppearing",
        "critical",
        "steps dead-lettered",
        lambda t: [("", "sum(increase(tierfleet_dead_letters_total[5m])) > 0")],
        _dead,
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
        _queues,
        for_="2m",
    ),
    AlertRule(
        "BatchJobStuck",
        "warning",
        "a provider batch job is older than the provider's window",
        lambda t: [
            ("", f"max by (state) (tierfleet_batch_job_oldest_age_seconds) > {t.batch_job_age_s:g}")
        ],
        _batch,
        for_="10m",
    ),
    AlertRule(
        "BudgetOvershoot",
        "critical",
        "calls cost more than they reserved: past a hard budget's guarantee",
        lambda t: [("", "increase(tierfleet_budget_overshoot_usd_total[5m]) > 0")],
        _overshoot,
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
