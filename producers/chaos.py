"""``tierfleet chaos``: a private fleet against the provider test server, N steps in flight
(mixed lanes, tenants, tight budgets, the batch lane), and, while they run: kill -9 of every
worker group in turn (restarted a moment later), 429 bursts with short and long Retry-After
and 5xx bursts from the provider, and fuzzed messages published straight to every queue
(one for every ``fuzz_every`` good steps). Then it counts what became of everything.

Every figure is measured, not asserted: the JSON says what happened, and ``SCENARIOS``
names what this run did (a broker or Redis restart and a prefork child killed inside a flush
are not in it yet; the redelivery tests cover the last)."""

from __future__ import annotations

import json
import random
import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from celery.result import AsyncResult

from producers.embedded import EmbeddedRedis, rabbitmq_vhost
from producers.fleet import Fleet
from producers.local_fleet import LocalFleet
from producers.provider_server.app import ProviderServer
from producers.provider_server.serve import serve_in_thread
from producers.report import summarize_bill, unique_steps
from queues.messages import StepResult, StepStatus
from queues.settings import TABLES, Settings
from queues.topology import TASK_NAMES, Stage, queue_names

SCENARIOS = [
    "kill -9 of every worker group in turn, restarted after a second",
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
    seed: int = 7
    chaos_s: float = 300.0  # faults for at most this long (less if every step is done)
    timeout_s: float = 600.0  # then this long for the fleet to finish what it holds,
    idle_s: float = 180.0  # or until no step has finished for this long


@dataclass
class Kill:
    group: str
    at: float


@dataclass
class Run:
    kills: list[Kill] = field(default_factory=list)
    fuzz: list[str] = field(default_factory=list)  # the marker each fuzz message carries
    submitted_at: dict[str, float] = field(default_factory=dict)


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
    if queue.startswith("tf.infer"):
        return TASK_NAMES[Stage.infer]
    stage = {
        "tf.ingress": Stage.cache,
        "tf.compress": Stage.compress,
        "tf.classify": Stage.classify,
        "tf.finalize": Stage.finalize,
    }
    return TASK_NAMES[stage[queue]]


def _nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@contextmanager
def chaos_fleet(
    plan: ChaosPlan, sentinel: str, work: Path
) -> Iterator[tuple[Fleet, LocalFleet, ProviderServer]]:
    provider = ProviderServer(batch_delay_s=2.0)
    running = serve_in_thread(provider)
    url = f"http://127.0.0.1:{running.port}"
    with EmbeddedRedis() as redis_server, _broker(plan, redis_server) as broker:
        settings = chaos_settings(url, sentinel, work / "archive", **broker)
        (work / "logs").mkdir(parents=True, exist_ok=True)
        local = LocalFleet(settings, log_dir=work / "logs")
        try:
            local.start(own_redis=False)
            with Fleet(local.settings) as fleet:
                yield fleet, local, provider
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


def kill_in_turn(local: LocalFleet, run: Run, stop: threading.Event, every_s: float) -> None:
    groups = [g for g in local.groups()]
    turn = 0
    while not stop.wait(every_s):
        group = groups[turn % len(groups)]
        turn += 1
        local.stop_group(group.name, kill=True)
        run.kills.append(Kill(group.name, time.time()))
        time.sleep(1.0)
        local.start_groups([group])


def provider_storms(provider: ProviderServer, stop: threading.Event) -> None:
    storms: list[list[dict[str, Any]]] = [
        [{"status": 429, "retry_after": 1.0, "times": 20}],
        [{"status": 500, "times": 15}],
        [{"status": 429, "retry_after": 30.0, "times": 5}],
    ]
    turn = 0
    while not stop.wait(15.0):
        provider.faults.set(storms[turn % len(storms)])
        turn += 1


def run_chaos(plan: ChaosPlan) -> dict[str, Any]:
    sentinel = f"sk-chaos-sentinel-{secrets.token_hex(12)}"
    work = Path(tempfile.mkdtemp(prefix="tierfleet-chaos-"))
    rng = random.Random(plan.seed)
    run = Run()
    steps = workload(plan)
    started = time.time()
    with chaos_fleet(plan, sentinel, work) as (fleet, local, provider):
        fleet.redis.flushdb()
        for tenant in ("t0", "t1", "t2"):
            for n in range(5):
                fleet.set_session_budget(tenant, f"tight{n}", 0.0001)
        stop = threading.Event()
        chaos = [
            threading.Thread(target=kill_in_turn, args=(local, run, stop, plan.kill_every_s)),
            threading.Thread(target=provider_storms, args=(provider, stop)),
        ]
        for t in chaos:
            t.start()
        handles: list[AsyncResult] = []
        fuzz = fuzz_messages(
            max(1, plan.steps // plan.fuzz_every),
            list(fleet.table.names),
            rng,
            by_priority=fleet.settings.lanes_by_priority,
        )
        for i in range(0, len(steps), 50):
            wave = steps[i : i + 50]
            for step in wave:
                run.submitted_at[step["step_id"]] = time.time()
            handles += fleet.submit_many(wave)
            for marker, queue, args in islice(fuzz, max(1, len(wave) // plan.fuzz_every)):
                fleet.app.send_task(_task_for(queue), args=args, queue=queue, ignore_result=True)
                run.fuzz.append(marker)
            time.sleep(0.2)
        # The faults go on while the steps run (for chaos_s at most), then stop; the fleet
        # must then finish every step it holds: what is still missing then is lost.
        _wait(fleet, handles, plan.chaos_s)
        stop.set()
        for t in chaos:
            t.join()
        provider.faults.set([])
        faults_ended = time.time()
        results = _wait(fleet, handles, plan.timeout_s, idle_s=plan.idle_s)
        drained_s = time.time() - faults_ended
        time.sleep(2.0)  # the last fuzz letters land
        figures = measure(fleet, provider, steps, results, run, sentinel, work)
        figures["drain_after_faults_s"] = round(drained_s, 1)
    figures.update(
        broker=plan.broker,
        wall_s=round(time.time() - started, 1),
        scenarios=SCENARIOS,
        kills=len(run.kills),
        work_dir=str(work),
    )
    return figures


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
            if handle.ready():
                result = StepResult.model_validate(handle.get(timeout=5))
                done[result.step_id] = result
                last = time.monotonic()
            else:
                still.append(handle)
        pending = still
        time.sleep(0.5)
    return done


def measure(
    fleet: Fleet,
    provider: ProviderServer,
    steps: list[dict[str, Any]],
    results: dict[str, StepResult],
    run: Run,
    sentinel: str,
    work: Path,
) -> dict[str, Any]:
    ledger = fleet.ledger()
    entries = Counter((e["tenant"], e["step_id"]) for e in ledger)
    statuses = Counter(r.status for r in results.values())
    tenant_of = {s["step_id"]: s["tenant"] for s in steps}
    bill = summarize_bill(fleet.calls(), unique_steps(ledger))
    provider_usd = provider.bill.snapshot()["total_usd"]
    dead = [d.record for d in fleet.dead_letters(100_000)] + fleet.archived_dead_letters()
    dead_text = json.dumps(dead)
    fuzz_accounted = sum(1 for m in run.fuzz if m in dead_text)
    overspend = 0.0
    for tenant in ("t0", "t1", "t2"):
        for s in range(5):
            state = fleet.session_budget(tenant, f"tight{s}")
            if state.limit_nano is not None:
                overspend += max(0, state.spent_nano - state.limit_nano) / 1e9
    # How long a kill stranded a step: from the last kill of a worker of the stage that
    # redelivered it to the moment its message came back (its "redelivered" decision).
    recovery = []
    for result in results.values():
        for d in result.decisions:
            if d.what != "redelivered":
                continue
            group = "infer-" if d.stage == "infer" else d.stage
            before = [k.at for k in run.kills if k.group.startswith(group) and k.at <= d.at]
            if before:
                recovery.append(d.at - max(before))
    good_lost = [
        s["step_id"]
        for s in steps
        if s["step_id"] not in results
        or (
            results[s["step_id"]].status is StepStatus.dead_lettered
            and "answered 5" not in results[s["step_id"]].reason
            and "retries exhausted" not in results[s["step_id"]].reason
        )
    ]
    return {
        "steps": len(steps),
        "answered_once": sum(
            1
            for s in steps
            if (r := results.get(s["step_id"])) is not None
            and r.status is StepStatus.ok
            and entries[(s["tenant"], s["step_id"])] == 1
        ),
        "budget_exceeded": statuses[StepStatus.budget_exceeded],
        "dead_lettered": statuses[StepStatus.dead_lettered],
        "dead_letter_reasons": dict(
            Counter(
                r.reason.split(":")[0][:60]
                for r in results.values()
                if r.status is StepStatus.dead_lettered
            ).most_common()
        ),
        "lost": sum(1 for s in steps if s["step_id"] not in results),
        "duplicate_answers": sum(1 for n in entries.values() if n > 1),
        "ledger_vs_provider_bill_pct": round(
            100 * (bill["billed_usd"] - provider_usd) / provider_usd, 4
        )
        if provider_usd
        else 0.0,
        "provider_bill_usd": round(provider_usd, 6),
        "duplicate_calls": bill["duplicate_calls"],
        "budget_overspend_usd": round(overspend, 9),
        "fuzz_sent": len(run.fuzz),
        "fuzz_accounted": fuzz_accounted,
        "good_batchmates_lost": len(good_lost),
        "cross_tenant_hits": sum(
            1
            for r in results.values()
            if r.cached_from and tenant_of.get(r.cached_from, r.tenant) != r.tenant
        ),
        "secret_hits": secret_hits(fleet, sentinel, work, dead_text),
        "redelivered_steps": sum(
            1 for r in results.values() if any(d.what == "redelivered" for d in r.decisions)
        ),
        "max_recovery_s": round(max(recovery, default=0.0), 1),
        "lost_steps": sorted(s["step_id"] for s in steps if s["step_id"] not in results)[:20],
        # What the fleet itself reports as lost (Fleet.lost): a loss is never silent.
        "lost_reported_by_fleet": sum(1 for r in fleet.lost(0.0) if "/chaos-" in r),
    }


def secret_hits(fleet: Fleet, sentinel: str, work: Path, dead_text: str) -> int:
    """Where the provider key turns up: every log and archive file, every Redis key and
    string value, every dead letter."""
    hits = sum(
        1
        for path in work.rglob("*")
        if path.is_file() and sentinel in path.read_text(errors="replace")
    )
    hits += int(sentinel in dead_text)
    for key in fleet.redis.scan_iter(count=1000):
        if sentinel.encode() in key:
            hits += 1
        elif fleet.redis.type(key) == b"string":
            value = fleet.redis.get(key) or b""
            hits += int(sentinel.encode() in value)
    return hits
