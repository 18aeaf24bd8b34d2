"""Lanes are separate queues drained in strict order: interactive, standard, batch."""

import time
import uuid

import pytest

from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from queues.messages import Envelope
from queues.settings import Settings
from queues.topology import Stage
from tests.integration.conftest import sealed_bus, settings_for
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration


def finish_order(fleet: Fleet, ids: set[str]) -> list[str]:
    entries = [e for e in fleet.ledger() if e.step_id in ids]
    return [e.step_id for e in sorted(entries, key=lambda e: e.ts)]


def wait_for_progress(fleet: Fleet, stream: str, steps: int) -> int:
    deadline = time.monotonic() + 60
    while (done := int(fleet.redis.xlen(stream))) < steps:
        assert time.monotonic() < deadline, "the backlog is not moving"
        time.sleep(0.005)
    return done


def test_interactive_overtakes_a_batch_backlog(redis_server):
    # A fleet of its own (Redis db 1), its cheap-tier worker started only once a backlog waits.
    overtakes_a_backlog(
        settings_for(redis_server, db=1, simulated_latency_ms=40.0, batch_flush_every=8)
    )


def overtakes_a_backlog(settings: Settings) -> None:
    """On any broker: an interactive step sent behind a backlog of batch and standard steps
    finishes within a few micro-batches, and standard drains before batch."""
    # Every inference tier runs: a rare low-confidence answer escalates and must finish too.
    local = LocalFleet(settings, groups=["infer-cheap", "infer-mid", "infer-frontier", "finalize"])
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()

        def at_cheap(lane: str, n: int) -> list[Envelope]:
            return [
                Envelope(
                    step=make_step(
                        lane=lane,
                        session_id=f"lane-{uuid.uuid4().hex[:6]}",
                        labels={"difficulty": 0.0},
                    ),
                    tier="cheap",
                )
                for _ in range(n)
            ]

        batch, standard = at_cheap("batch", 120), at_cheap("standard", 40)
        sealed_bus(fleet).send_many(Stage.infer, batch)
        sealed_bus(fleet).send_many(Stage.infer, standard)
        try:
            local.start(own_redis=False)
            done_before = wait_for_progress(fleet, settings.ledger_stream, 24)
            [urgent] = at_cheap("interactive", 1)
            sent_at = time.time()
            sealed_bus(fleet).send(Stage.infer, urgent)
            handles = [fleet.result_handle(e.step) for e in batch + standard + [urgent]]
            *_, urgent_result = fleet.wait(handles, timeout=120)
        finally:
            local.stop()

        batch_ids = {e.step.step_id for e in batch}
        standard_ids = {e.step.step_id for e in standard}
        order = finish_order(fleet, batch_ids | standard_ids | {urgent.step.step_id})
        position = {sid: i for i, sid in enumerate(order)}
        # The interactive step overtook the backlog still waiting (over 100 steps): at most the
        # micro-batches already fetched (prefetch = flush_every) ran before it.
        # On failure, where the interactive step's time went: each stage's decision, after send.
        path = [(d.stage, d.what, round(d.at - sent_at, 3)) for d in urgent_result.decisions]
        assert position[urgent.step.step_id] <= done_before + 3 * settings.batch_flush_every, (
            f"{done_before} done before it was sent; its path: {path}"
        )
        # Standard drained before batch, although batch was queued first.
        last_standard = max(position[s] for s in standard_ids)
        batch_before = sum(1 for s in batch_ids if position[s] < last_standard)
        assert batch_before <= 16, f"{batch_before} batch steps ran before standard finished"


def test_interactive_overtakes_a_batch_backlog_at_every_stage(redis_server):
    """Submitted behind 300 batch steps, an interactive step is answered among the first:
    every stage drains its interactive lane first, not only inference."""
    settings = settings_for(redis_server, db=10)
    local = LocalFleet(settings)
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        backlog = [make_step(lane="batch", labels={"difficulty": 0.0}) for _ in range(300)]
        urgent = make_step(lane="interactive", labels={"difficulty": 0.0})
        handles = fleet.submit_many(backlog)
        handles.append(fleet.submit(urgent))
        try:
            local.start(own_redis=False)
            fleet.wait(handles, timeout=180)
        finally:
            local.stop()
        order = finish_order(fleet, {s.step_id for s in backlog} | {urgent.step_id})
    assert len(order) == 301
    assert order.index(urgent.step_id) < 40, f"answered {order.index(urgent.step_id)}th"


def test_a_batch_step_is_not_starved_by_a_stream_of_interactive_ones(redis_server):
    """Strict lane order, bounded: a batch step that waited past its bound is moved up and
    served while interactive steps still wait (without the bound it would be last)."""
    settings = settings_for(
        redis_server,
        db=11,
        lane_max_wait_s={"standard": 0.5, "batch": 0.5},
        lane_guard_interval_s=0.1,
    )
    local = LocalFleet(settings, groups=["cache"])  # the cache stage alone: what it passes on
    with Fleet(settings) as fleet:  # waits in the compress queues
        fleet.redis.flushdb()
        fleet.submit(make_step(lane="batch"))
        fleet.submit_many([make_step(lane="interactive") for _ in range(1500)])
        try:
            local.start(own_redis=False)
            deadline = time.monotonic() + 60
            while not fleet.redis.llen("tf.compress.batch"):
                assert time.monotonic() < deadline, "the batch step never left ingress"
                time.sleep(0.01)
            still_waiting = fleet.redis.llen("tf.ingress.interactive")
        finally:
            local.stop()
    assert still_waiting > 0, "the batch step was served only after every interactive step"
