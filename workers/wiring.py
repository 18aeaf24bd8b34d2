"""Assembles the worker-side app: the Celery app from ``queues`` plus every stage's task."""

from __future__ import annotations

from typing import Any

import redis
import structlog
from celery import Celery
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    worker_init,
    worker_process_init,
    worker_ready,
)

from policies.tiers import TierTable, load_tier_table
from queues.celery_app import create_app
from queues.settings import Settings
from queues.topology import FINALIZE, NOOP, NOOP_TASK, TASK_NAMES, Stage, queue_names, served_tiers
from workers import batch_lane, cache, classify, compress, finalize, infer
from workers.alerting import AlertEvaluator
from workers.configuration import configuration_problem
from workers.lane_guard import LaneGuard
from workers.lease import LeaseKeeper, held_by
from workers.logs import configure_logging, redact_handlers
from workers.metrics_export import serve_metrics
from workers.opening import Opener, open_envelope, open_ingress
from workers.providers import provider_problems
from workers.runtime import LazyRuntime, build_runtime
from workers.stage import Handler, register_stage
from workers.stores.redis_policy import eviction_problem, where

log = structlog.get_logger("tierfleet.fleet")

# The plain stages, by name: each is a handler over (envelope, runtime), and how its
# messages are opened (the ingress stage also takes producers' submissions).
STAGE_HANDLERS: dict[Stage, tuple[Handler, Opener]] = {
    Stage.cache: (cache.handle, open_ingress),
    Stage.compress: (compress.handle, open_envelope),
    Stage.classify: (classify.handle, open_envelope),
}


def report_unavailable_providers(settings: Settings, table: TierTable) -> None:
    """Say at start which providers cannot be used; steps routed to them are dead-lettered
    with the same reason."""
    for why in provider_problems(settings, (m.provider for m in table.models.values())):
        log.error("provider_unavailable", reason=why)


def check_redis_policy(settings: Settings) -> None:
    """Refuse to start on a Redis that evicts keys (see workers/stores/redis_policy.py)."""
    urls = {settings.store_url, settings.broker_url, settings.backend_url}
    for url in sorted(u for u in urls if u.startswith(("redis://", "rediss://", "unix://"))):
        client = redis.Redis.from_url(url)
        try:
            problem = eviction_problem(client, where(url))
        finally:
            client.close()
        if problem and not settings.allow_evicting_redis:
            log.error("redis_evicts", reason=problem)
            raise SystemExit(f"tierfleet worker refuses to start: {problem}")
        if problem:
            log.warning("redis_evicts", reason=problem)


def keep_leases(settings: Settings, consumer: Any) -> LeaseKeeper | None:
    """On a Redis broker, renew the leases of the messages this worker holds (see
    workers/lease.py); other brokers track deliveries themselves."""
    if consumer is None or not settings.broker_is_redis:
        return None
    client = redis.Redis.from_url(settings.broker_url)
    every_s = max(0.5, settings.visibility_timeout_s / 4)
    return LeaseKeeper(held_by(consumer), client, every_s).start()


def consumed(app: Celery) -> set[str]:
    """The queues this worker consumes (``-Q``; every queue when none is named)."""
    return set(app.amqp.queues.consume_from)


def refuse_bad_configuration(settings: Settings, queues: set[str]) -> None:
    """Stop the worker at start when what its stages need cannot be loaded (an unreadable
    router artifact, a missing compressor model), rather than dead-letter every step."""
    problem = configuration_problem(settings, queues)
    if problem:
        log.error("bad_configuration", reason=problem)
        raise SystemExit(f"tierfleet worker refuses to start: {problem}")


def warm(runtime: LazyRuntime, queues: set[str]) -> None:
    """Open connections and load models before the first step, not during it. What fails
    here was checked at start; a failure now (a blink) is retried at the first step."""
    try:
        runtime().warm(queues)
    except Exception as exc:
        log.warning("warm_failed", error=str(exc))


def tune_micro_batches(app: Celery, table: TierTable, queues: set[str]) -> None:
    """A worker of a tier whose table entry sizes its micro-batches takes them so (a
    celery-batches task reads these when each message arrives; several tiers: the
    smallest)."""
    tiers = [t for t in table.tiers if t.name in served_tiers(queues)]
    every = [t.flush_every for t in tiers if t.flush_every is not None]
    wait = [t.flush_interval_s for t in tiers if t.flush_interval_s is not None]
    task = app.tasks[TASK_NAMES[Stage.infer]]
    if every:
        task.flush_every = min(every)
    if wait:
        task.flush_interval = min(wait)


def build_worker_app(settings: Settings) -> Celery:
    table = load_tier_table(settings.tier_table, settings.price_table)
    app = create_app(settings, table.names)
    runtime = LazyRuntime(settings, lambda: build_runtime(app, settings, table))
    for stage, (handler, opener) in STAGE_HANDLERS.items():
        register_stage(app, runtime, stage, handler, opener)
    infer.register(app, runtime)
    cache.register(app, runtime)
    finalize.register(app, runtime)
    batch_lane.register(app, runtime)

    @app.task(name=NOOP_TASK, queue=NOOP)
    def noop() -> None:
        """The broker's floor, for ``tierfleet bench fleet``."""

    configure_logging(settings.log_level, settings.log_json, settings.secrets())

    @after_setup_logger.connect(weak=False)
    @after_setup_task_logger.connect(weak=False)
    def _redact_celery_logs(logger: Any, **_: Any) -> None:
        # Celery's own lines (an unregistered or invalid message, a task error) can quote a
        # message body: a prompt, perhaps a secret.
        redact_handlers(logger, settings.secrets())

    @worker_init.connect(weak=False)
    def _check_at_start(**_: Any) -> None:
        check_redis_policy(settings)
        refuse_bad_configuration(settings, consumed(app))
        tune_micro_batches(app, table, consumed(app))
        # Before the pool forks: its children record into the folder this process serves.
        serve_metrics(
            settings,
            consumed(app),
            {m.provider for m in table.models.values()},
            list(table.models),
        )

    @worker_process_init.connect(weak=False)
    def _init_process(**_: Any) -> None:
        configure_logging(settings.log_level, settings.log_json, settings.secrets())
        warm(runtime, consumed(app))

    @worker_ready.connect(weak=False)
    def _ready(sender: Any = None, **_: Any) -> None:
        report_unavailable_providers(settings, table)
        keep_leases(settings, sender)
        if settings.broker_is_redis:
            client = redis.Redis.from_url(settings.broker_url, socket_timeout=5)
            queues = sorted(consumed(app))
            LaneGuard(
                client, queues, settings.lane_max_wait_s, settings.lane_guard_interval_s
            ).start()
        if FINALIZE in consumed(app) and settings.alert_interval_s > 0:
            AlertEvaluator(settings, queue_names(table.names, settings.lanes_by_priority)).start()
        warm(runtime, consumed(app))  # the solo pool runs tasks in the main process

    return app
