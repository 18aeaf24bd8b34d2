"""``tierfleet chaos``: a private fleet against the provider test server, N steps in flight
(mixed lanes, tenants, tight budgets, the batch lane), and, while they run, the faults of
``chaos_faults``: kill -9 of every worker group in turn (prefork pools), kill -9 of a pool
child inside a micro-batch's call, a Redis restart (append-only file on), a broker restart,
429 bursts with short and long Retry-After and 5xx bursts from the provider, and fuzzed
messages published straight to every queue (one for every ``fuzz_every`` good steps). Then
``chaos_measure`` counts what became of everything."""

from __future__ import annotations

import json
import random
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import redis
from celery.result import AsyncResult

from policies.tables import TABLES
from producers.bench.chaos_faults import (
    Chaos,
    kill_child_in_flush,
    kill_in_turn,
    provider_storms,
    restarts,
)
from producers.bench.chaos_measure import measure
from producers.fakes.provider_server.serve import serve_in_thread
from producers.fakes.provider_server.server import ProviderServer
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.local.services import EmbeddedRedis, rabbitmq_vhost
from queues.messages import StepResult
from queues.settings import Settings
from queues.topology import TASK_NAMES, queue_names, stage_of_queue

SCENARIOS = [
    "kill -9 of every worker group (prefork pool, the pool's children with it) in turn, "
    "restarted after a second",
    "kill -9 of a prefork pool child while its micro-batch's provider call is out",
    "Redis kill -9 and restart (append-only file, fsync always), down 3 s",
    "broker restart: RabbitMQ's application stopped and started; on the Redis broker, a "
    "second kill -9 and restart of that Redis",
    "provider 429 bursts (Retry-After 1 s and 30 s) and 5xx bursts",
    "fuzzed messages on every queue: non-JSON, wrong arity, wrong types, nesting to 1000, "
    "up to 16 MB, lone surrogates, forged internal fields",
]


@dataclass
class ChaosPlan:
    steps: int = 2000
    broker: str = "redis"  # or "rabbitmq"
    fuzz_every: int = 15
    kill_every_s: float = 4.0
    child_kill_every_s: float = 7.0
    redis_restart_at_s: float = 10.0  # after the last step is submitted
    broker_restart_at_s: float = 40.0
    seed: int = 7
    chaos_s: float = 300.0  # faults for at most this long (less if every step is done)
    timeout_s: float = 600.0  # then this long for the fleet to finish what it holds,
    idle_s: float = 180.0  # or until no step has finished for this long


def chaos_settings(url: str, sentinel: str, archive: Path, **broker: object) -> Settings:
    return Settings.model_validate(
        {
            **broker,
            "tier_table": TABLES / "providers.toml",
            "openai_api_key": sentinel,
            "anthropic_api_key": sentinel,
            "openai_base_url": f"{url}/v1",
            "anthropic_base_url": url,
            "archive_dir": archive,
            "visibility_timeout_s": 10,
            "unacked_restore_interval_s": 2,
            "batch_job_wait_s": 2.0,
            "batch_poll_interval_s": 1.0,
            "batch_submit_grace_s": 10.0,
            "retry_backoff_s": 0.2,
            "provider_timeout_s": 10.0,
            "provider_retry_after_cap_s": 5.0,
            "breaker_cooldown_s": 5.0,
            "log_json": True,
        }
    )


def workload(plan: ChaosPlan) -> list[dict[str, Any]]:
    rng = random.Random(plan.seed)
    steps = []
    for i in range(plan.steps):
        tenant = f"t{i % 3}"
        session = f"s{rng.randrange(60)}" if rng.random() > 0.1 else f"tight{rng.randrange(5)}"
        lane = rng.choices(["interactive", "standard", "batch"], weights=[2, 7, 1])[0]
        steps.append(
            {
                "step_id": f"chaos-{i}",
                "tenant": tenant,
                "agent": f"agent{rng.randrange(3)}",
                "workflow": "chaos",
                "session_id": session,
                "lane": lane,
                "task_kind": rng.choice(["chat", "extract", "summarize"]),
                "max_output_tokens": 64,
                "messages": [
                    {"role": "system", "content": "Answer the passenger in one line."},
                    {"role": "user", "content": f"question {i}: {rng.random():.6f}"},
                ],
            }
        )
    return steps


def fuzz_messages(
    n: int, tiers: list[str], rng: random.Random, by_priority: bool = False
) -> Iterator[tuple[str, str, list[Any]]]:
    """(marker, queue, arguments): each bad message carries its marker where it can."""
    step = {"tenant": "fuzz", "agent": "a", "session_id": "s", "messages": []}
    queues = [q for q in queue_names(tiers, by_priority) if q not in ("tf.batch", "tf.bench.noop")]
    kinds: list[Callable[[str], list[Any]]] = [
        lambda m: [f"not json {m}"],
        lambda m: [json.dumps({"step": {**step, "step_id": m}})] * 3,
        lambda m: [json.dumps({"step": {**step, "step_id": m, "messages": 5}})],
        lambda m: [json.dumps({"step": {**step, "step_id": m}, "x": _nested(rng.randrange(1000))})],
        lambda m: [json.dumps({"step": {**step, "step_id": m}}) + " " * rng.choice([1, 2**24])],
        lambda m: ['{"step": {"step_id": "' + m + '", "tenant": "fuzz\\ud800"}}'],
        lambda m: [
            json.dumps({"step": {**step, "step_id": m}, "tier": "frontier", "costs": [{}]}),
            "0" * 64,
        ],
    ]
    for i in range(n):
        marker = f"fuzz-{i}"
        yield marker, queues[i % len(queues)], rng.choice(kinds)(marker)


def _task_for(queue: str) -> str:
    return TASK_NAMES[stage_of_queue(queue)]


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@contextmanager
def chaos_fleet(plan: ChaosPlan, sentinel: str, work: Path) -> Iterator[Chaos]:
    provider = ProviderServer.with_delay(2.0)
    running = serve_in_thread(provider)
    url = f"http://127.0.0.1:{running.port}"
    redis_server = EmbeddedRedis(append_only=True)
    with redis_server, _broker(plan, redis_server) as broker:
        settings = chaos_settings(url, sentinel, work / "archive", **broker)
        (work / "logs").mkdir(parents=True, exist_ok=True)
        local = LocalFleet(settings, log_dir=work / "logs")
        try:
            local.start(own_redis=False, pool="prefork")
            with Fleet(local.settings) as fleet:
                yield Chaos(local, fleet, provider, redis_server, plan.broker)
        finally:
            local.stop()
            running.stop()


@contextmanager
def _broker(plan: ChaosPlan, redis_server: EmbeddedRedis) -> Iterator[dict[str, object]]:
    if plan.broker == "redis":
        yield {"broker_url": redis_server.url}
        return
    with rabbitmq_vhost() as amqp_url:
        yield {"broker_url": amqp_url, "redis_url": redis_server.url}


def run_chaos(plan: ChaosPlan) -> dict[str, Any]:
    sentinel = f"sk-chaos-sentinel-{secrets.token_hex(12)}"
    work = Path(tempfile.mkdtemp(prefix="tierfleet-chaos-"))
    rng = random.Random(plan.seed)
    steps = workload(plan)
    started = time.time()
    with chaos_fleet(plan, sentinel, work) as chaos:
        fleet, run = chaos.fleet, chaos.run
        fleet.redis.flushdb()
        for tenant in ("t0", "t1", "t2"):
            for n in range(5):
                fleet.set_session_budget(tenant, f"tight{n}", 0.0001)
        faults = [
            threading.Thread(target=kill_in_turn, args=(chaos, plan.kill_every_s)),
            threading.Thread(target=kill_child_in_flush, args=(chaos, plan.child_kill_every_s)),
            threading.Thread(target=provider_storms, args=(chaos,)),
            threading.Thread(
                target=restarts, args=(chaos, plan.redis_restart_at_s, plan.broker_restart_at_s)
            ),
        ]
        for t in faults:
            t.start()
        try:
            handles = submit_with_fuzz(fleet, steps, plan, rng, run.fuzz)
            chaos.submitted.set()
            # The faults go on while the steps run (for chaos_s at most, and at least until
            # both restarts are done), then stop; the fleet must then finish every step it
            # holds: what is still missing then is lost.
            fault_deadline = time.monotonic() + plan.chaos_s
            _wait(fleet, handles, plan.chaos_s)
            chaos.restarts_done.wait(max(0.0, fault_deadline - time.monotonic()))
        finally:
            chaos.stop.set()
            for t in faults:
                t.join()
        chaos.provider.account.faults.set([])
        faults_ended = time.time()
        results = _wait(fleet, handles, plan.timeout_s, idle_s=plan.idle_s)
        drained_s = time.time() - faults_ended
        time.sleep(2.0)  # the last fuzz letters land
        figures = measure(fleet, chaos.provider, steps, results, run, sentinel, work)
        figures["drain_after_faults_s"] = round(drained_s, 1)
    figures.update(
        broker=plan.broker,
        wall_s=round(time.time() - started, 1),
        scenarios=SCENARIOS,
        kills=len(run.kills),
        pool_child_kills=sum(1 for k in run.kills if k.group.endswith("pool child")),
        restarts=[r.what for r in run.restarts],
        fault_notes=run.notes[:20],
        work_dir=str(work),
    )
    return figures


def submit_with_fuzz(
    fleet: Fleet, steps: list[dict[str, Any]], plan: ChaosPlan, rng: random.Random, sent: list[str]
) -> list[AsyncResult]:
    """The steps in waves of 50, with one fuzzed message for every ``fuzz_every`` of them
    published straight to the queues; each fuzz message's marker goes on ``sent``."""
    handles: list[AsyncResult] = []
    fuzz = fuzz_messages(
        max(1, plan.steps // plan.fuzz_every),
        list(fleet.table.names),
        rng,
        by_priority=fleet.settings.lanes_by_priority,
    )
    for i in range(0, len(steps), 50):
        wave = steps[i : i + 50]
        handles += fleet.submit_many(wave)
        for marker, queue, args in islice(fuzz, max(1, len(wave) // plan.fuzz_every)):
            fleet.app.send_task(_task_for(queue), args=args, queue=queue, ignore_result=True)
            sent.append(marker)
        time.sleep(0.2)
    return handles


def _wait(
    fleet: Fleet, handles: list[AsyncResult], timeout_s: float, idle_s: float | None = None
) -> dict[str, StepResult]:
    """Every step's result that came within the timeout, by step id; with ``idle_s``, it
    stops early once no result has come for that long (longer than any redelivery, retry
    or gate wait the run allows)."""
    deadline = time.monotonic() + timeout_s
    last = time.monotonic()
    done: dict[str, StepResult] = {}
    pending = list(handles)
    while pending and time.monotonic() < deadline:
        if idle_s is not None and time.monotonic() - last > idle_s:
            break
        still = []
        for handle in pending:
            try:
                if handle.ready():
                    result = StepResult.model_validate(handle.get(timeout=5))
                    done[result.step_id] = result
                    last = time.monotonic()
                    continue
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                pass  # Redis is restarting: asked again on the next round
            still.append(handle)
        pending = still
        time.sleep(0.5)
    return done
