"""The fleet's own alerts, for a fleet with no Prometheus: every ``alert_interval_s`` one
finalize worker (a Redis lock picks it) gathers the facts (the ledger's recent and trailing
windows, the queues' oldest messages, the batch jobs), evaluates the rules of
``policies.alerts`` and records what fired and what resolved on the ``tf:alerts`` stream,
what fires now in a hash. ``tierfleet alerts`` and the report read them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import asdict
from typing import Any

import redis
import structlog

from policies.alert_checks import AlertThresholds, Facts, Firing
from policies.alerts import changes, evaluate
from queues import keys
from queues.records import LedgerEntry
from queues.settings import Settings
from workers.metrics_export import RedisQueues
from workers.ports import BatchJobs
from workers.stores.batch_jobs import RedisBatchJobs
from workers.stores.redis_stores import as_text, decode_fields

log = structlog.get_logger("tierfleet.alerts")

KEEP_EVENTS = 10_000
MAX_ENTRIES = 50_000  # per window: a busier fleet's windows are read from their newest end


def thresholds_of(settings: Settings) -> AlertThresholds:
    return AlertThresholds(
        latency_p95_s=dict(settings.alert_latency_p95_s), queue_age_s=settings.alert_queue_age_s
    )


class AlertStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def active(self) -> dict[str, Firing]:
        raw = self.client.hgetall(keys.ALERTS_ACTIVE)
        return {as_text(k): Firing(**json.loads(v)) for k, v in raw.items()}

    def record(self, fired: list[Firing], resolved: list[Firing], now: float) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            for state, alerts in (("firing", fired), ("resolved", resolved)):
                for alert in alerts:
                    event = {**asdict(alert), "state": state, "ts": now}
                    pipe.xadd(
                        keys.ALERTS_STREAM,
                        {"event": json.dumps(event)},
                        maxlen=KEEP_EVENTS,
                        approximate=True,
                    )
                    if state == "firing":
                        pipe.hset(keys.ALERTS_ACTIVE, alert.key, json.dumps(asdict(alert)))
                    else:
                        pipe.hdel(keys.ALERTS_ACTIVE, alert.key)
            pipe.execute()

    def events(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` events, oldest first."""
        page: Any = self.client.xrevrange(keys.ALERTS_STREAM, count=limit)
        return [json.loads(fields[b"event"]) for _, fields in reversed(page)]


def ledger_window(client: redis.Redis, stream: str, start: float, end: float) -> list[LedgerEntry]:
    """Entries appended between two times (a stream id is its time in ms), newest kept."""
    page: Any = client.xrevrange(
        stream, max=f"{int(end * 1000)}", min=f"{int(start * 1000)}", count=MAX_ENTRIES
    )
    return [LedgerEntry.model_validate(decode_fields(f)) for _, f in reversed(page)]


def batch_ages(jobs: BatchJobs, now: float) -> dict[str, float]:
    ages: dict[str, float] = {}
    for job in jobs.jobs():
        ages[job.state] = max(ages.get(job.state, 0.0), now - job.created_at)
    return ages


class AlertEvaluator:
    def __init__(
        self,
        settings: Settings,
        queues: Collection[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings, self.queues, self.clock = settings, sorted(queues), clock
        self.store_client = redis.Redis.from_url(settings.store_url, socket_timeout=5)
        self.broker = (
            RedisQueues(redis.Redis.from_url(settings.broker_url, socket_timeout=5))
            if settings.broker_is_redis
            else None
        )
        self.alerts = AlertStore(self.store_client)
        self.batch_jobs = RedisBatchJobs(self.store_client)
        self.thresholds = thresholds_of(settings)
        self._stop = threading.Event()

    def facts(self, now: float) -> Facts:
        s = self.settings
        stream, client = s.ledger_stream, self.store_client
        since = now - s.alert_window_s
        ages: dict[str, float] = {}
        if self.broker is not None:
            for queue in self.queues:
                _, oldest = self.broker.measure(queue, now)
                if oldest is not None:
                    ages[queue] = oldest
        return Facts(
            recent=ledger_window(client, stream, since, now),
            trailing=ledger_window(client, stream, since - s.alert_trailing_s, since),
            queue_age_s=ages,
            batch_job_age_s=batch_ages(self.batch_jobs, now),
        )

    def round(self) -> tuple[list[Firing], list[Firing]]:
        """One evaluation, if this worker holds the round's lock: (fired, resolved)."""
        interval_ms = max(1, int(self.settings.alert_interval_s * 900))
        if not self.store_client.set(keys.ALERTS_LOCK, "1", nx=True, px=interval_ms):
            return [], []
        now = self.clock()
        fired, resolved = changes(self.alerts.active(), evaluate(self.facts(now), self.thresholds))
        self.alerts.record(fired, resolved, now)
        for alert in fired:
            log.warning("alert_fired", alert=alert.key, summary=alert.summary)
        for alert in resolved:
            log.info("alert_resolved", alert=alert.key)
        return fired, resolved

    def run(self) -> None:
        while not self._stop.wait(self.settings.alert_interval_s):
            try:
                self.round()
            except (redis.RedisError, OSError, ValueError) as exc:
                log.warning("alert_round_failed", error=f"{type(exc).__name__}: {exc}")

    def start(self) -> AlertEvaluator:
        threading.Thread(target=self.run, name="tierfleet-alerts", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
