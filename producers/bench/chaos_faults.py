"""The faults of ``tierfleet chaos``, each a thread that acts until ``stop`` is set: kill -9
of worker groups in turn, kill -9 of a prefork pool child while its micro-batch's call is
out, provider storms, and restarts of Redis (append-only file on) and of the broker. Each
notes what it did and when, for the measures."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from producers.fakes.provider_server.server import ProviderServer
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.local.services import EmbeddedRedis, restart_rabbitmq


@dataclass
class Kill:
    group: str
    at: float


@dataclass
class Restart:
    what: str
    down_at: float
    up_at: float


@dataclass
class Run:
    kills: list[Kill] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    fuzz: list[str] = field(default_factory=list)  # the marker each fuzz message carries
    notes: list[str] = field(default_factory=list)  # what a fault could not do, and why


@dataclass
class Chaos:
    """What the faults act on, and how they learn to stop."""

    local: LocalFleet
    fleet: Fleet
    provider: ProviderServer
    redis_server: EmbeddedRedis
    broker: str
    run: Run = field(default_factory=Run)
    stop: threading.Event = field(default_factory=threading.Event)
    outage: threading.Event = field(default_factory=threading.Event)  # Redis or broker down
    submitted: threading.Event = field(default_factory=threading.Event)  # every step is in
    restarts_done: threading.Event = field(default_factory=threading.Event)

    def note(self, what: str, exc: BaseException) -> None:
        self.run.notes.append(f"{time.time():.1f} {what}: {type(exc).__name__}: {exc}"[:300])


def kill_in_turn(c: Chaos, every_s: float) -> None:
    """kill -9 of each worker group (the worker and its pool) in turn, restarted a second
    later; none while Redis or the broker is down (a worker then could not report ready)."""
    groups = c.local.groups()
    turn = 0
    while not c.stop.wait(every_s):
        if c.outage.is_set():
            continue
        group = groups[turn % len(groups)]
        turn += 1
        c.local.stop_group(group.name, kill=True)
        c.run.kills.append(Kill(group.name, time.time()))
        time.sleep(1.0)
        try:
            c.local.start_groups([group], pool="prefork")
        except Exception as exc:  # spawned, but not ready in time: it joins when it can
            c.note(f"restart of {group.name}", exc)


def kill_child_in_flush(c: Chaos, every_s: float) -> None:
    """kill -9 of a prefork pool child while a call of its micro-batch is out: a try noted
    as sent (the note names its pid) with no answer yet. The worker replaces the child; the
    batch must come back."""
    infer = [g.name for g in c.local.groups() if g.name.startswith("infer-")]
    while not c.stop.wait(every_s):
        deadline = time.monotonic() + every_s
        while time.monotonic() < deadline and not c.stop.is_set():
            if not c.outage.is_set() and _kill_one_in_flush(c, infer):
                break
            time.sleep(0.05)


ENDED = ("answer", "unanswered")


def _kill_one_in_flush(c: Chaos, groups: list[str]) -> bool:
    children = {pid: g for g in groups for pid in c.local.pool_children(g)}
    try:
        calls = _recent_calls(c.fleet, c.fleet.settings.calls_stream)
    except Exception as exc:  # Redis restarting: try again later
        c.note("reading the calls stream", exc)
        return False
    ended = {(r["call_id"], r["try"]) for r in calls if r.get("event") in ENDED}
    failed = {(r["call_id"], r["try"], r["n"]) for r in calls if r.get("event") == "try_failed"}
    for record in calls:  # newest first: a try that went out and has no end yet
        pid, call = record.get("pid"), (record["call_id"], record["try"])
        out = record.get("event") == "try_sent" and call not in ended
        if out and (*call, record["n"]) not in failed and pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            c.run.kills.append(Kill(f"{children[pid]} pool child", time.time()))
            return True
    return False


def _recent_calls(fleet: Fleet, stream: str, count: int = 200) -> list[dict[str, Any]]:
    page: Any = fleet.redis.xrevrange(stream, count=count)
    return [
        {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in fields.items()}
        for _, fields in page
    ]


def provider_storms(c: Chaos) -> None:
    storms: list[list[dict[str, Any]]] = [
        [{"status": 429, "retry_after": 1.0, "times": 20}],
        [{"status": 500, "times": 15}],
        [{"status": 429, "retry_after": 30.0, "times": 5}],
    ]
    turn = 0
    while not c.stop.wait(15.0):
        c.provider.account.faults.set(storms[turn % len(storms)])
        turn += 1


def restarts(c: Chaos, redis_at_s: float, broker_at_s: float, down_s: float = 3.0) -> None:
    """A Redis restart (kill -9, ``down_s`` down, AOF replayed) ``redis_at_s`` after the
    last step was submitted, and a broker restart ``broker_at_s`` after it: RabbitMQ's
    application stopped and started, or on a Redis broker a second kill -9 of that same
    Redis. (A producer whose submit fails while Redis is down must submit again: that is
    the producer's part, not the fleet's, so the run restarts nothing before then.)"""
    while not c.submitted.wait(1.0):
        if c.stop.is_set():
            c.restarts_done.set()
            return
    started = time.monotonic()
    try:
        for at_s, what in ((redis_at_s, "redis"), (broker_at_s, "broker")):
            if c.stop.wait(max(0.0, at_s - (time.monotonic() - started))):
                return
            c.outage.set()
            down_at = time.time()
            try:
                if what == "broker" and c.broker == "rabbitmq":
                    restart_rabbitmq(down_s)
                else:
                    c.redis_server.restart(down_s)
            except Exception as exc:
                c.note(f"{what} restart", exc)
                continue
            finally:
                # Workers reconnect on their own; kills wait a little longer.
                threading.Timer(10.0, c.outage.clear).start()
            c.run.restarts.append(Restart(f"{what} ({c.broker} broker)", down_at, time.time()))
    finally:
        c.restarts_done.set()
