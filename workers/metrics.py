"""The fleet's Prometheus metrics, recorded where each thing happens (finalize, a provider
call, the cascade, a budget reservation, a stage) and served by each worker group
(``workers.metrics_export``).

Prefork workers fork children that do the work; prometheus-client's multiprocess mode has
each process write its values to files in one folder, which the group's main process sums
at every scrape. ``use_multiprocess`` switches it on before the pool forks (the value class
is chosen when a labelled metric's first child is made, so the definitions below may exist
before). Labels are bounded (``policies.metric_labels``)."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, values

from policies.metric_labels import LabelCap, reason_class
from queues.records import LedgerEntry

# Seconds: a cache hit answers in milliseconds, a local model's batch in minutes.
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
COST_BUCKETS = (1e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.05, 0.1, 0.5, 1.0)

OWNER = ("tenant", "agent", "workflow", "task_kind")
TOKEN_KINDS = ("input", "cached", "output")


def use_multiprocess(folder: Path) -> None:
    """Record into ``folder`` from now on, in this process and every child it forks. The
    folder is emptied first: values of a stopped worker are not carried over."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)  # read by prometheus-client itself
    values.ValueClass = values.MultiProcessValue()


class FleetMetrics:
    """Every metric the workers record. Its registry is its own (several fleets may live in
    one test process); a worker group's endpoint reads the multiprocess files instead."""

    def __init__(self, label_values: int = 50) -> None:
        self.cap = LabelCap(label_values)
        self.registry = CollectorRegistry(auto_describe=True)
        self._define_steps(self.registry)
        self._define_bill(self.registry)
        self._define_events(self.registry)

    def _define_steps(self, r: CollectorRegistry) -> None:
        self.steps = Counter(
            "tierfleet_steps",
            "Finished steps by how they ended and who answered",
            ["status", "tier", "model", "lane", "tenant"],
            registry=r,
        )
        self.step_seconds = Histogram(
            "tierfleet_step_seconds",
            "Submit to finalize, per step",
            ["lane", "status"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.step_cost = Histogram(
            "tierfleet_step_cost_usd",
            "What one step cost, every call it paid for included",
            ["lane"],
            buckets=COST_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "tierfleet_stage_seconds",
            "Time a stage's task ran (inference: per micro-batch)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "tierfleet_tier_queue_wait_seconds",
            "From hand-over to a tier to its call: queue plus micro-batching",
            ["tier"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.call_seconds = Histogram(
            "tierfleet_call_seconds",
            "One provider call (a micro-batch is one call)",
            ["model"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )

    def _define_bill(self, r: CollectorRegistry) -> None:
        self.cost = Counter(
            "tierfleet_cost_usd",
            "Dollars billed by model and tenant, shadow calls marked",
            ["model", "tenant", "shadow"],
            registry=r,
        )
        self.tokens = Counter(
            "tierfleet_tokens",
            "Tokens billed by model and tenant",
            ["model", "tenant", "kind"],
            registry=r,
        )
        self.owner_cost = Counter(
            "tierfleet_owner_cost_usd",
            "Dollars billed by tenant, agent, workflow and task kind",
            list(OWNER),
            registry=r,
        )
        self.owner_tokens = Counter(
            "tierfleet_owner_tokens",
            "Tokens billed by tenant, agent, workflow and task kind",
            [*OWNER, "kind"],
            registry=r,
        )
        self.frontier_cost = Counter(
            "tierfleet_frontier_cost_usd",
            "What the finished steps would have cost sent once, uncached and uncompressed, to "
            "the frontier model (savings: this less tierfleet_cost_usd_total)",
            ["tenant"],
            registry=r,
        )

    def _define_events(self, r: CollectorRegistry) -> None:
        self.cache = Counter(
            "tierfleet_cache_lookups",
            "Finished steps by the cache layer that answered them (miss: none)",
            ["layer"],
            registry=r,
        )
        self.audits = Counter(
            "tierfleet_cache_audits",
            "Semantic would-be hits judged: served or not, and the judge's verdict",
            ["served", "verdict"],
            registry=r,
        )
        self.escalations = Counter(
            "tierfleet_escalations",
            "Steps sent to the next tier, by the class of the reason",
            ["from_tier", "to_tier", "reason"],
            registry=r,
        )
        self.budget = Counter(
            "tierfleet_budget_reservations",
            "Budget reservations before paid calls: reserved or refused",
            ["result"],
            registry=r,
        )
        self.economy = Counter(
            "tierfleet_economy_steps", "Steps switched to economy mode by a soft budget", registry=r
        )
        self.overshoot = Counter(
            "tierfleet_budget_overshoot_usd",
            "Dollars spent beyond what the calls had reserved",
            registry=r,
        )
        self.dead = Counter(
            "tierfleet_dead_letters",
            "Steps and messages dead-lettered, by stage and the class of the reason",
            ["stage", "reason"],
            registry=r,
        )
        self.provider_errors = Counter(
            "tierfleet_provider_errors",
            "Failed provider calls by provider and kind",
            ["provider", "kind"],
            registry=r,
        )

    def _owner(self, tenant: str, agent: str, workflow: str, task_kind: str) -> list[str]:
        names = (tenant, agent, workflow, task_kind)
        return [self.cap(k, v) for k, v in zip(OWNER, names, strict=True)]

    def step_finished(self, entry: LedgerEntry) -> None:
        """A step's ledger entry, once per step (finalize's guarded side effects)."""
        tenant = self.cap("tenant", entry.tenant)
        model = self.cap("model", entry.model)
        self.steps.labels(entry.status, entry.tier or "none", model, entry.lane, tenant).inc()
        self.step_seconds.labels(entry.lane, entry.status).observe(entry.latency_ms / 1000)
        self.step_cost.labels(entry.lane).observe(entry.cost_usd)
        self.frontier_cost.labels(tenant).inc(entry.frontier_usd)
        layer = "semantic" if entry.semantic else "exact" if entry.cache_hit else "miss"
        self.cache.labels(layer).inc()

    def call_billed(
        self,
        model: str,
        owner: tuple[str, str, str, str],
        tokens: tuple[int, int, int],
        cost_usd: float,
        *,
        shadow: bool,
    ) -> None:
        """A provider call on the bill: (tenant, agent, workflow, task kind) and tokens
        (input, cached, output)."""
        tenant_agent_workflow_kind = self._owner(*owner)
        model = self.cap("model", model)
        tenant = tenant_agent_workflow_kind[0]
        self.cost.labels(model, tenant, str(shadow).lower()).inc(cost_usd)
        self.owner_cost.labels(*tenant_agent_workflow_kind).inc(cost_usd)
        for kind, count in zip(TOKEN_KINDS, tokens, strict=True):
            if count:
                self.tokens.labels(model, tenant, kind).inc(count)
                self.owner_tokens.labels(*tenant_agent_workflow_kind, kind).inc(count)

    def cache_audited(self, served: bool, same: bool | None) -> None:
        verdict = "none" if same is None else "right" if same else "wrong"
        self.audits.labels(str(served).lower(), verdict).inc()

    def escalated(self, from_tier: str, to_tier: str, why: str) -> None:
        self.escalations.labels(from_tier, to_tier, reason_class(why)).inc()

    def dead_lettered(self, stage: str, reason: str) -> None:
        self.dead.labels(stage, reason_class(reason)).inc()

    def provider_failed(self, provider: str, error: BaseException) -> None:
        self.provider_errors.labels(provider, type(error).__name__).inc()
