"""The checks behind the fleet's alert rules (``policies.alerts``), each a pure function of
what the fleet knows now (``Facts``) and the thresholds: the rules that fire, with the value
they saw and the limit they crossed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
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


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return float(ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))])


def latency_p95(facts: Facts, t: AlertThresholds) -> list[Firing]:
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


def session_cost_p95(facts: Facts, t: AlertThresholds) -> list[Firing]:
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


def cache_hit_drop(facts: Facts, t: AlertThresholds) -> list[Firing]:
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


def escalation_rise(facts: Facts, t: AlertThresholds) -> list[Firing]:
    # Rising against what: a fleet with no trailing history has no rate to rise from.
    if len(facts.recent) < t.min_steps or len(facts.trailing) < t.min_steps:
        return []
    now, before = escalation_rate(facts.recent), escalation_rate(facts.trailing)
    limit = max(t.escalation_floor, t.escalation_factor * before)
    if now <= limit:
        return []
    summary = f"{now:.2f} escalations per step (trailing {before:.2f})"
    return [Firing("EscalationRateRising", "", now, limit, summary)]


def dead_letters(facts: Facts, t: AlertThresholds) -> list[Firing]:
    dead = sum(1 for e in facts.recent if e.status == "dead_lettered")
    if not dead:
        return []
    return [Firing("DeadLettersAppearing", "", dead, 0, f"{dead} steps dead-lettered")]


def queue_age(facts: Facts, t: AlertThresholds) -> list[Firing]:
    return [
        Firing("QueueAgeGrowing", q, age, t.queue_age_s, f"{q}: oldest message {age:.0f} s old")
        for q, age in sorted(facts.queue_age_s.items())
        if age > t.queue_age_s and not q.endswith(".batch")
    ]


def batch_job_age(facts: Facts, t: AlertThresholds) -> list[Firing]:
    return [
        Firing("BatchJobStuck", s, age, t.batch_job_age_s, f"a {s} batch job is {age:.0f} s old")
        for s, age in sorted(facts.batch_job_age_s.items())
        if age > t.batch_job_age_s
    ]


def budget_overshoot(facts: Facts, t: AlertThresholds) -> list[Firing]:
    over = sum(e.overshoot_usd for e in facts.recent)
    if over <= 0:
        return []
    return [Firing("BudgetOvershoot", "", over, 0, f"${over:.6f} spent beyond reservations")]
