"""Each worker group's /metrics: what its processes recorded (``workers.metrics``, summed
over the prefork children's files) and what is read fresh at each scrape: the depth and age
of the oldest message of the queues it drains, the providers' circuits, and (the batch
group) the batch lane's parked steps and jobs."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import redis
import structlog
from kombu.connection import Connection
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from queues import keys
from queues.bus import SENT_AT
from queues.settings import Settings
from queues.topology import BATCH, INGRESS
from workers.metrics import use_multiprocess
from workers.ports import BatchJobs
from workers.stores.audits import RedisAudits
from workers.stores.batch_jobs import RedisBatchJobs

log = structlog.get_logger("tierfleet.metrics")

# kombu's Redis transport keeps a queue's priorities in lists of their own (LPUSH, taken from
# the right: the oldest message is the last element).
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_PRIORITY_SEP = "\x06\x16"


def priority_lists(queue: str) -> list[str]:
    return [queue if p == 0 else f"{queue}{KOMBU_PRIORITY_SEP}{p}" for p in KOMBU_PRIORITY_STEPS]


def sent_at(raw: bytes | None) -> float | None:
    """When a message waiting on a Redis list was sent, from its header."""
    if raw is None:
        return None
    try:
        stamp = json.loads(raw).get("headers", {}).get(SENT_AT)
    except (ValueError, AttributeError):
        return None
    return float(stamp) if isinstance(stamp, int | float) else None


class RedisQueues:
    """Depth and the oldest message's age of queues on a Redis broker."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def measure(self, queue: str, now: float) -> tuple[int, float | None]:
        lists = priority_lists(queue)
        with self.client.pipeline(transaction=False) as pipe:
            for name in lists:
                pipe.llen(name)
                pipe.lindex(name, -1)
            replies = pipe.execute()
        depth = sum(int(n) for n in replies[0::2])
        stamps = [s for s in (sent_at(raw) for raw in replies[1::2]) if s is not None]
        return depth, (max(0.0, now - min(stamps)) if stamps else None)


class AmqpQueues:
    """Depth of queues on RabbitMQ (a passive declare; the oldest message is not visible
    without taking it, so no age)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def measure(self, queue: str, now: float) -> tuple[int, float | None]:
        with Connection(self.url, connect_timeout=2) as connection:
            declared = connection.default_channel.queue_declare(queue=queue, passive=True)
        return int(declared.message_count), None


class FleetCollector(Collector):
    """What is read fresh at each scrape. A store that cannot be read is reported as
    ``tierfleet_scrape_ok 0``, never as a zero depth."""

    def __init__(
        self,
        queues: Any,
        names: Collection[str],
        store: redis.Redis,
        providers: Collection[str],
        batch_jobs: BatchJobs | None,
        models: Collection[str] = (),
        clock: Callable[[], float] = time.time,
        semantic: bool = False,
    ) -> None:
        self.queues, self.names, self.store = queues, sorted(names), store
        self.providers, self.batch_jobs, self.models = sorted(providers), batch_jobs, models
        self.clock, self.semantic = clock, semantic

    def collect(self) -> Iterator[Metric]:
        now, ok = self.clock(), 1.0
        depth = GaugeMetricFamily("tierfleet_queue_depth", "Messages waiting", labels=["queue"])
        age = GaugeMetricFamily(
            "tierfleet_queue_oldest_age_seconds",
            "How long the oldest waiting message has waited",
            labels=["queue"],
        )
        try:
            for name in self.names:
                n, oldest = self.queues.measure(name, now)
                depth.add_metric([name], n)
                age.add_metric([name], oldest or 0.0)
            yield depth
            yield age
            yield from self._circuits(now)
            if self.batch_jobs is not None:
                yield from self._batch(now)
            if self.semantic:
                yield from self._semantic()
        except (redis.RedisError, OSError) as exc:
            log.warning("scrape_failed", error=f"{type(exc).__name__}: {exc}")
            ok = 0.0
        yield GaugeMetricFamily("tierfleet_scrape_ok", "1 when every store could be read", ok)

    def _circuits(self, now: float) -> Iterator[Metric]:
        open_ = GaugeMetricFamily(
            "tierfleet_circuit_open", "1 while a provider's circuit is open", labels=["provider"]
        )
        failures = GaugeMetricFamily(
            "tierfleet_provider_failures_in_row",
            "Transient failures in a row (the circuit opens at its limit)",
            labels=["provider"],
        )
        for provider in self.providers:
            until, count = self.store.hmget(keys.gate_breaker(provider), "open_until", "failures")
            open_.add_metric([provider], float(until is not None and float(until) > now))
            failures.add_metric([provider], float(count or 0))
        yield open_
        yield failures

    def _batch(self, now: float) -> Iterator[Metric]:
        assert self.batch_jobs is not None
        jobs = GaugeMetricFamily(
            "tierfleet_batch_jobs", "Provider batch jobs by state", labels=["state"]
        )
        oldest = GaugeMetricFamily(
            "tierfleet_batch_job_oldest_age_seconds",
            "Age of the oldest provider batch job by state",
            labels=["state"],
        )
        parked = GaugeMetricFamily(
            "tierfleet_batch_parked_steps",
            "Steps parked for the next batch job, by model",
            labels=["model"],
        )
        by_state: dict[str, list[float]] = {"submitting": [], "submitted": []}
        for job in self.batch_jobs.jobs():
            by_state.setdefault(job.state, []).append(now - job.created_at)
        for state, ages in sorted(by_state.items()):
            jobs.add_metric([state], len(ages))
            oldest.add_metric([state], max(ages, default=0.0))
        for model in sorted(self.models):
            parked.add_metric([model], self.batch_jobs.pending(model))
        yield jobs
        yield oldest
        yield parked

    def _semantic(self) -> Iterator[Metric]:
        """The threshold the cache workers serve each score's semantic hits at, as they last
        published it (workers/hit_bound.py): +Inf while nothing is served."""
        threshold = GaugeMetricFamily(
            "tierfleet_semantic_threshold",
            "The score a semantic hit must reach (+Inf: suspended, nothing served)",
            labels=["scorer", "source"],
        )
        bound = GaugeMetricFamily(
            "tierfleet_semantic_wrong_hit_bound",
            "The 95% upper bound on the wrong-hit rate of the judged pairs behind it",
            labels=["scorer"],
        )
        for name, state in sorted(RedisAudits(self.store).published().items()):
            value = state["threshold"]
            threshold.add_metric(
                [name, state["source"]], float("inf") if value is None else float(value)
            )
            bound.add_metric([name], float(state["upper"]))
        yield threshold
        yield bound


def serve_metrics(
    settings: Settings,
    consumed: Collection[str],
    providers: Collection[str],
    models: Collection[str],
) -> Path | None:
    """Start this worker group's /metrics (before the pool forks); the folder its processes
    record into, or None when metrics are off."""
    if not settings.metrics:
        return None
    folder = settings.metrics_dir or Path(tempfile.mkdtemp(prefix="tierfleet-metrics-"))
    use_multiprocess(folder)
    store = redis.Redis.from_url(settings.store_url, socket_timeout=2)
    queues: Any = (
        RedisQueues(redis.Redis.from_url(settings.broker_url, socket_timeout=2))
        if settings.broker_is_redis
        else AmqpQueues(settings.broker_url)
    )
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    batch_jobs = RedisBatchJobs(store) if BATCH in consumed else None
    collector = FleetCollector(
        queues, consumed, store, providers, batch_jobs, models, semantic=INGRESS in consumed
    )
    registry.register(collector)
    try:
        start_http_server(settings.metrics_port, settings.metrics_address, registry=registry)
    except OSError as exc:
        raise SystemExit(
            f"tierfleet worker refuses to start: /metrics cannot listen on port "
            f"{settings.metrics_port} ({exc}); give each worker on a machine its own "
            "TIERFLEET_METRICS_PORT, or unset it"
        ) from exc
    log.info("metrics_serving", port=settings.metrics_port, folder=str(folder))
    return folder
