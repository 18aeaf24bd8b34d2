"""Redelivery that does not take an hour: live workers renew the leases of what they hold,
a killed worker's messages come back after the (short) visibility timeout without anyone
restarting it, and a step that kills its worker is dead-lettered after max_deliveries,
taking no batch-mates with it a second time."""

import time

import pytest

from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from queues.celery_app import transport_options
from queues.messages import Envelope, StepStatus
from queues.topology import Stage, WorkerGroup
from tests.integration.conftest import sealed_bus, settings_for, wait_for_a_call_under_way
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration

UNACKED_MUTEX = "unacked_mutex"  # kombu's default ``unacked_mutex_key``


def cheap_workers(settings, names: list[str]) -> list[WorkerGroup]:
    """Worker groups named ``names``, each draining the cheap tier's queues."""
    cheap = next(g for g in LocalFleet(settings).groups() if g.name == "infer-cheap")
    return [WorkerGroup(n, cheap.queues, cheap.prefetch_multiplier) for n in names]


def infer_fleet(settings, names: list[str], *, pool: str = "solo") -> LocalFleet:
    local = LocalFleet(settings, groups=["finalize", "infer-mid", "infer-frontier"])
    local.start(own_redis=False)
    local.start_groups(cheap_workers(settings, names), pool=pool)
    return local


def cheap_steps(n: int, **labels: object) -> list[Envelope]:
    return [
        Envelope(step=make_step(labels={"difficulty": 0.0, **labels}), tier="cheap")
        for _ in range(n)
    ]


def redelivered(fleet: Fleet) -> list[bytes]:
    return list(fleet.redis.scan_iter(match="tf:deliveries:*"))


def test_a_call_longer_than_the_visibility_timeout_is_never_handed_to_a_second_worker(
    redis_server,
):
    settings = settings_for(
        redis_server,
        db=11,
        visibility_timeout_s=2,
        unacked_restore_interval_s=1,
        simulated_latency_ms=5000.0,
        batch_flush_every=1,
    )
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        [env] = cheap_steps(1)
        local = infer_fleet(settings, ["infer-a", "infer-b"])
        try:
            sealed_bus(fleet).send_many(Stage.infer, [env])
            [result] = fleet.wait([fleet.result_handle(env.step)], timeout=60)
        finally:
            local.stop()
        assert result.status is StepStatus.ok
        assert redelivered(fleet) == []  # held 5 s under a 2 s timeout, never put back


def test_a_killed_workers_steps_come_back_without_a_restart(redis_server):
    """Even when it dies holding the sweep lock (kombu's default would keep it 5 minutes)."""
    settings = settings_for(
        redis_server,
        db=11,
        visibility_timeout_s=3,
        unacked_restore_interval_s=1,
        simulated_latency_ms=400.0,
        batch_flush_every=4,
    )
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        envs = cheap_steps(24)
        local = infer_fleet(settings, ["infer-a", "infer-b"])
        try:
            sealed_bus(fleet).send_many(Stage.infer, envs)
            wait_for_a_call_under_way(fleet.redis)  # not mid-fetch: see the helper
            # As if infer-a died mid-sweep: the sweep lock stays held until it expires.
            expire = transport_options(settings).get("unacked_mutex_expire", 300)
            fleet.redis.set(UNACKED_MUTEX, "held-by-infer-a", ex=expire)
            local.stop_group("infer-a", kill=True)
            killed_at = time.monotonic()
            results = fleet.wait([fleet.result_handle(e.step) for e in envs], timeout=60)
            recovered_s = time.monotonic() - killed_at
        finally:
            local.stop()
        assert all(r.status is StepStatus.ok for r in results)
        assert recovered_s < 30  # the timeout (3 s), the lock's expiry and a sweep, not an hour
        assert redelivered(fleet), "infer-a held nothing when it was killed"
        answered = [e.step_id for e in fleet.ledger()]
        assert sorted(answered) == sorted(e.step.step_id for e in envs)  # each once


def test_a_step_that_kills_its_worker_is_dead_lettered_and_spares_its_batch_mates(
    redis_server,
):
    settings = settings_for(
        redis_server,
        db=11,
        visibility_timeout_s=3,
        unacked_restore_interval_s=1,
        batch_flush_every=4,
        batch_flush_interval_s=0.5,
        max_deliveries=2,
    )
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        envs = cheap_steps(3) + cheap_steps(1, kill_worker=True)
        local = infer_fleet(settings, ["infer-a"], pool="prefork")
        try:
            sealed_bus(fleet).send_many(Stage.infer, envs)
            results = fleet.wait([fleet.result_handle(e.step) for e in envs], timeout=90)
        finally:
            local.stop()
    *mates, poison = results
    assert [r.status for r in mates] == [StepStatus.ok] * 3
    assert poison.status is StepStatus.dead_lettered
    assert "delivered 3 times without finishing" in poison.reason
