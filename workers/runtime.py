"""Everything a stage needs, built once per worker process (after the fork, never at import)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import redis
import structlog
from celery import Celery

from policies.calibration import load_calibration
from policies.compression import CompressionPlan, TextCompressor, plan_for
from policies.learned_router import RouterArtifact, load_router
from policies.tiers import ModelSpec, TierTable
from policies.tokens import TokenCounter
from queues.bus import CeleryBus
from queues.config.compression import CompressionConfig
from queues.seal import Sealer, sealer_for
from queues.settings import Settings
from queues.topology import CLASSIFY, COMPRESS, DEAD, INFER_PREFIX, INGRESS, served_tiers
from workers.errors import PermanentError
from workers.hit_bound import HitBound
from workers.lazy import Lazy, LazyByKey
from workers.metrics import FleetMetrics
from workers.ml.tokenizer import BpeCounter
from workers.ports import (
    BatchJobs,
    BudgetStore,
    Bus,
    DeadLetters,
    Deliveries,
    ExactCache,
    Finalized,
    Ledger,
    Provider,
    Results,
    SessionSteps,
    Summaries,
)
from workers.providers import build_provider, provider_key
from workers.semantic import SemanticLayer, build_semantic_layer
from workers.semantic_ports import Audits
from workers.stores.archive import archive_for
from workers.stores.audits import RedisAudits
from workers.stores.batch_jobs import RedisBatchJobs
from workers.stores.budget import budget_store
from workers.stores.dead_letters import RedisDeadLetters
from workers.stores.provider_gate import RedisProviderGate
from workers.stores.redis_stores import (
    BackendResults,
    RedisDeliveries,
    RedisExactCache,
    RedisFinalizeGuard,
    StreamLedger,
)
from workers.stores.session_steps import RedisSessionSteps
from workers.stores.summaries import RedisSummaries

log = structlog.get_logger("tierfleet.runtime")


@dataclass
class Runtime:
    settings: Settings
    table: TierTable
    counter: TokenCounter
    bus: Bus
    budgets: BudgetStore
    cache: ExactCache
    ledger: Ledger
    finalized: Finalized
    dead: DeadLetters
    results: Results
    provider_factory: Callable[[ModelSpec], Provider]
    batch_jobs: BatchJobs
    shadow: Ledger  # shadow evaluation records
    calls: Ledger  # every provider call, as it returns: the bill
    summaries: Summaries  # the cheap tier's summaries of dropped exchanges
    session_steps: SessionSteps  # each session's distinct steps (the runaway-loop cap)
    sealer: Sealer  # checks the seal of every envelope a stage receives
    deliveries: Deliveries  # how often the broker has handed each message over
    audits: Audits  # the semantic cache's judged would-be hits (workers/hit_bound.py)
    clock: Callable[[], float] = time.time
    metrics: FleetMetrics = field(default_factory=FleetMetrics)
    # Builds the semantic cache layer (only the cache worker calls it): (layer, or why not).
    semantic_factory: Callable[[], tuple[SemanticLayer | None, str]] = lambda: (None, "off")
    # The prompt compressor for long free text: None is the lexical default (no model).
    text_compressor_factory: Callable[[], TextCompressor | None] = lambda: None
    # Built once per process, on first use or by ``warm``, whichever comes first.
    _semantic: Lazy[tuple[SemanticLayer | None, str]] = field(init=False)
    _text_compressor: Lazy[TextCompressor | None] = field(init=False)
    _providers: LazyByKey[str, Provider] = field(init=False)
    _router: Lazy[RouterArtifact] = field(init=False)
    _acceptance: Lazy[RouterArtifact | None] = field(init=False)
    _calibration: Lazy[dict[str, list[tuple[float, float]]]] = field(init=False)
    _hit_bound: Lazy[HitBound] = field(init=False)

    def __post_init__(self) -> None:
        self._semantic = Lazy(self._open_semantic)
        self._text_compressor = Lazy(self.text_compressor_factory)
        self._providers = LazyByKey()
        self._router = Lazy(lambda: router_artifact(self.settings))
        self._acceptance = Lazy(lambda: acceptance_artifact(self.settings))
        self._calibration = Lazy(lambda: calibration_points(self.settings))
        self._hit_bound = Lazy(lambda: HitBound(self.audits, self.settings, self.clock))

    def provider_for(self, model: ModelSpec) -> Provider:
        """One client per provider; one engine per model the worker runs itself."""
        return self._providers.get(provider_key(model), lambda: self.provider_factory(model))

    @property
    def router(self) -> RouterArtifact:
        """The learned router's artifact, loaded once per process."""
        return self._router.get()

    @property
    def acceptance(self) -> RouterArtifact | None:
        """The learned acceptance check, when one is configured (loaded once)."""
        return self._acceptance.get()

    @property
    def calibration(self) -> dict[str, list[tuple[float, float]]]:
        """Per model, the points that make its raw confidence calibrated (loaded once)."""
        return self._calibration.get()

    def _open_semantic(self) -> tuple[SemanticLayer | None, str]:
        layer, why = self.semantic_factory()
        if layer is None:
            log.warning("semantic_cache_off", reason=why)
        return layer, why

    @property
    def semantic(self) -> SemanticLayer | None:
        """The semantic cache layer; None (the reason logged once) if off."""
        return self._semantic.get()[0]

    @property
    def hit_bound(self) -> HitBound:
        """The semantic cache's served threshold, kept by its judged would-be hits."""
        return self._hit_bound.get()

    @property
    def text_compressor(self) -> TextCompressor | None:
        """The configured prompt compressor, loaded once per process."""
        return self._text_compressor.get()

    def warm(self, queues: Collection[str]) -> None:
        """Build now what the stages on ``queues`` will need, so that a bad configuration
        stops the worker at start, not its first step, and no step waits for a load."""
        self.counter.count_many(["warm up"])
        if self.settings.router == "learned" and CLASSIFY in queues:
            _ = self.router
        if any(q.startswith(INFER_PREFIX) for q in queues):
            _ = self.acceptance
        for model in local_models(self.table, queues):  # its engine loads now, once
            self.provider_for(model)
        if COMPRESS in queues:
            _ = self.text_compressor
        if INGRESS in queues:
            _ = self.semantic

    def compression_plan(self, economy: bool = False) -> CompressionPlan:
        return plan_for(self.settings, self.settings, economy)


def build_runtime(app: Celery, settings: Settings, table: TierTable) -> Runtime:
    client = redis.Redis.from_url(settings.store_url)
    counter = BpeCounter(settings.tokenizer_encoding)
    sealer = sealer_for(settings.envelope_key, settings.broker_url)
    gate = RedisProviderGate(
        client,
        settings.provider_limits,
        settings.model_limits,
        slot_ttl_s=settings.provider_timeout_s * settings.provider_max_attempts + 30,
        wait_s=settings.provider_slot_wait_s,
        failures=settings.breaker_failures,
        cooldown_s=settings.breaker_cooldown_s,
    )

    def archived_stream(stream: str) -> StreamLedger:
        """A capped stream whose oldest entries move to the archive."""
        archive = archive_for(settings.archive_dir, stream)
        return StreamLedger(client, stream, settings.ledger_keep_entries, archive)

    return Runtime(
        settings=settings,
        table=table,
        counter=counter,
        bus=CeleryBus(app, sealer, lanes_by_priority=settings.lanes_by_priority),
        budgets=budget_store(client, settings),
        cache=RedisExactCache(client, settings.cache_ttl_s),
        ledger=archived_stream(settings.ledger_stream),
        finalized=RedisFinalizeGuard(
            client, settings.result_ttl_s, claim_s=settings.visibility_timeout_s / 2
        ),
        dead=RedisDeadLetters(
            client, settings.dead_keep_letters, archive_for(settings.archive_dir, DEAD)
        ),
        results=BackendResults(app),
        provider_factory=lambda model: build_provider(
            model.provider, settings, counter, gate, model
        ),
        batch_jobs=RedisBatchJobs(client),
        calls=archived_stream(settings.calls_stream),
        shadow=archived_stream(settings.shadow_stream),
        summaries=RedisSummaries(client, settings.summary_ttl_s),
        session_steps=RedisSessionSteps(client, settings.session_steps_ttl_s),
        sealer=sealer,
        deliveries=RedisDeliveries(client),
        audits=RedisAudits(client),
        semantic_factory=lambda: build_semantic_layer(settings),
        text_compressor_factory=lambda: build_text_compressor(settings),
        metrics=FleetMetrics(settings.metrics_label_values),
    )


def build_text_compressor(settings: CompressionConfig) -> TextCompressor | None:
    """LLMLingua when a compressor model is configured; None (the lexical default) else."""
    if settings.compressor_model_path is None:
        return None
    from workers.ml.llmlingua import LlmLinguaCompressor

    try:
        return LlmLinguaCompressor.load(
            settings.compressor_model_path,
            settings.compressor_device,
            settings.compressor_question_aware,
        )
    except (ImportError, OSError, ValueError) as exc:
        raise PermanentError(
            f"cannot load the compressor {settings.compressor_model_path}: {exc} "
            "(install the `llmlingua` extra, or unset TIERFLEET_COMPRESSOR_MODEL_PATH)"
        ) from exc


def router_artifact(settings: Settings) -> RouterArtifact:
    if settings.router_artifact is None:
        raise PermanentError(
            "TIERFLEET_ROUTER=learned needs TIERFLEET_ROUTER_ARTIFACT "
            "(written by `tierfleet train router`)"
        )
    return _load_artifact("router", settings.router_artifact)


def calibration_points(settings: Settings) -> dict[str, list[tuple[float, float]]]:
    path = settings.calibration_artifact
    if path is None:
        return {}
    try:
        return load_calibration(path)
    except (OSError, ValueError, KeyError) as exc:
        raise PermanentError(f"cannot load the calibration artifact {path}: {exc}") from exc


def acceptance_artifact(settings: Settings) -> RouterArtifact | None:
    path = settings.acceptance_artifact
    return None if path is None else _load_artifact("acceptance", path)


def _load_artifact(kind: str, path: Path) -> RouterArtifact:
    try:
        return load_router(path)
    except (OSError, ValueError, KeyError) as exc:
        raise PermanentError(f"cannot load the {kind} artifact {path}: {exc}") from exc


def local_models(table: TierTable, queues: Collection[str]) -> list[ModelSpec]:
    """The models a worker on ``queues`` runs itself: the local models of its tiers."""
    tiers = served_tiers(queues)
    return [
        table.models[name]
        for tier in table.tiers
        if tier.name in tiers
        for name in tier.members
        if table.models[name].local is not None
    ]


class LazyRuntime(Lazy[Runtime]):
    """The runtime, built on first use, so connections open in the worker process itself."""

    def __init__(self, settings: Settings, build: Callable[[], Runtime]) -> None:
        super().__init__(build)
        self.settings = settings

    def __call__(self) -> Runtime:
        return self.get()
