"""A worker killed mid-batch loses nothing and counts nothing twice (acks_late + guarded
finalize): its unacked messages come back after the visibility timeout."""

import time
from collections import Counter

import pytest

from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from queues.messages import Envelope, StepStatus
from queues.topology import Stage
from tests.integration.conftest import sealed_bus, settings_for, wait_for_a_call_under_way
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration


def test_a_killed_inference_worker_loses_no_step(redis_server):
    settings = settings_for(
        redis_server, db=2, simulated_latency_ms=300.0, batch_flush_every=8, visibility_timeout_s=3
    )
    local = LocalFleet(settings, groups=["infer-cheap", "infer-mid", "infer-frontier", "finalize"])
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        envs = [
            Envelope(step=make_step(labels={"difficulty": 0.0}), tier="cheap") for _ in range(64)
        ]
        sealed_bus(fleet).send_many(Stage.infer, envs)
        try:
            local.start(own_redis=False)
            # Kill it inside a batch's provider call, its messages fetched and unacked; how many
            # it holds depends on how many had arrived when the batch flushed. Watched from the
            # start (not after a first batch is ledgered): on a slow machine the backlog can
            # drain before finalize's first ledger entry lands.
            wait_for_a_call_under_way(fleet.redis)
            local.stop_group("infer-cheap", kill=True)
            in_flight = int(fleet.redis.hlen("unacked"))
            # A replacement worker restores, as it starts, what has been unacked for longer than
            # the visibility timeout (Celery's periodic restore runs only every ~100 s).
            time.sleep(settings.visibility_timeout_s + 0.5)
            local.start_groups([g for g in local.groups() if g.name == "infer-cheap"])
            handles = [fleet.result_handle(e.step) for e in envs]
            results = fleet.wait(handles, timeout=90)
        finally:
            local.stop()
        assert in_flight > 0, "the kill caught no message in flight"
        assert all(r.status is StepStatus.ok for r in results)
        assert int(fleet.redis.hlen("unacked")) == 0
        counts = Counter(e.step_id for e in fleet.ledger())
        assert set(counts) == {e.step.step_id for e in envs}
        assert set(counts.values()) == {1}  # every step in the ledger exactly once
