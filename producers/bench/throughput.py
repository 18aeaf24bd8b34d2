"""``tierfleet bench fleet``: end-to-end steps/s and the fleet's own overhead per step on the
embedded fleet with the simulated provider answering instantly, beside Celery's no-op floor
on the same broker."""

from __future__ import annotations

import statistics
import threading
import time
import urllib.request
import uuid
from typing import Any

from producers.fleet import Fleet
from producers.local.launcher import NOOP_GROUP, LocalFleet
from producers.report import percentile
from queues.settings import Settings
from queues.step import AgentStep
from queues.topology import NOOP, NOOP_TASK


def bench_steps(n: int, tag: str) -> list[AgentStep]:
    """Unique single-turn steps (no cache hits) easy enough to be accepted at the cheap tier."""
    return [
        AgentStep(
            tenant="bench",
            agent="bench",
            session_id=f"{tag}-{i % 64}",
            messages=({"role": "user", "content": f"bench step {tag} {i}: say ok"},),
            task_kind="chat",
            max_output_tokens=16,
            labels={"difficulty": 0.0, "output_tokens": 4},
        )
        for i in range(n)
    ]


def noop_rate(fleet: Fleet, n: int) -> float:
    """No-op tasks/s through one worker: publish n, then one sentinel whose result we await
    (the worker drains its queue in order, so the sentinel lands last)."""
    app = fleet.app
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(n):
            app.send_task(NOOP_TASK, queue=NOOP, producer=producer, ignore_result=True)
    sentinel = uuid.uuid4().hex
    app.send_task(NOOP_TASK, queue=NOOP, task_id=sentinel)
    for _ in app.backend.get_many([sentinel], timeout=300, interval=0.005):
        pass
    return (n + 1) / (time.perf_counter() - started)


class Scraper:
    """Reads every worker group's /metrics once a second, as a (busy) Prometheus would."""

    def __init__(self, urls: list[str]) -> None:
        self.urls, self.scrapes = urls, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            for url in self.urls:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    reply.read()
                self.scrapes += 1

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def throughput(settings: Settings, steps: int, tag: str) -> tuple[float, int]:
    """Steps/s of one fleet (metrics as ``settings`` say, scraped each second when on), and
    how many scrapes it served."""
    with LocalFleet(settings) as local, Fleet(local.settings) as fleet:
        fleet.wait(fleet.submit_many(bench_steps(50, tag + "w")), timeout=120)  # warm-up
        with Scraper(list(local.metrics_urls().values())) as scraper:
            started = time.perf_counter()
            fleet.wait(fleet.submit_many(bench_steps(steps, tag)), timeout=900)
            elapsed = time.perf_counter() - started
    return steps / elapsed, scraper.scrapes


def metrics_overhead(settings: Settings, steps: int, rounds: int = 2) -> dict[str, Any]:
    """Steps/s with metrics on (each group's endpoint scraped every second) and off (no
    endpoint; values only in process memory), alternated, the median of each."""
    on_settings = settings.model_copy(update={"metrics": True})
    off_settings = settings.model_copy(update={"metrics": False})
    on, off, scrapes = [], [], 0
    for _ in range(rounds):
        rate, served = throughput(on_settings, steps, uuid.uuid4().hex[:8])
        on.append(rate)
        scrapes += served
        off.append(throughput(off_settings, steps, uuid.uuid4().hex[:8])[0])
    on_rate, off_rate = statistics.median(on), statistics.median(off)
    return {
        "metrics_on_steps_per_s": round(on_rate, 1),
        "metrics_off_steps_per_s": round(off_rate, 1),
        "metrics_cost_pct": round(100 * (1 - on_rate / off_rate), 1),
        "metrics_rounds": rounds,
        "metrics_runs_on": [round(x, 1) for x in on],
        "metrics_runs_off": [round(x, 1) for x in off],
        "scrapes": scrapes,
    }


def bench_fleet(steps: int, settings: Settings, latency_samples: int = 200) -> dict[str, Any]:
    settings = settings.model_copy(update={"simulated_latency_ms": 0.0})
    tag = uuid.uuid4().hex[:8]
    with LocalFleet(settings, extra_groups=[NOOP_GROUP]) as local, Fleet(local.settings) as fleet:
        fleet.wait(fleet.submit_many(bench_steps(50, tag + "w")), timeout=120)  # warm-up

        started = time.perf_counter()
        results = fleet.wait(fleet.submit_many(bench_steps(steps, tag)), timeout=900)
        elapsed = time.perf_counter() - started

        round_trips = []
        for step in bench_steps(latency_samples, tag + "l"):
            t0 = time.perf_counter()
            fleet.wait([fleet.submit(step)], timeout=60, poll_s=0.001)
            round_trips.append((time.perf_counter() - t0) * 1000)

        noop = noop_rate(fleet, max(1000, steps))
    hops = sum(len(r.decisions) + 1 for r in results) / len(results)
    return {
        "steps": steps,
        "seconds": round(elapsed, 3),
        "steps_per_s": round(steps / elapsed, 1),
        "overhead_p50_ms": round(percentile(round_trips, 50), 2),
        "overhead_p99_ms": round(percentile(round_trips, 99), 2),
        "latency_samples": latency_samples,
        "noop_tasks_per_s": round(noop, 1),
        "hops_per_step": round(hops, 2),
        "hop_ceiling_steps_per_s": round(noop / hops, 1),
        "flush_every": settings.batch_flush_every,
        "flush_interval_ms": settings.batch_flush_interval_s * 1000,
        "provider": "simulated, instant",
        "all_ok": all(r.status == "ok" for r in results),
    }
