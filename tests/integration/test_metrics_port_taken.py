"""A worker whose /metrics port another process took after the launcher picked it (a race
free_port cannot close) is started again on another port, not reported as a dead fleet."""

import socket

import pytest

from producers.fleet import Fleet
from producers.local import launcher
from producers.local.launcher import LocalFleet
from queues.messages import StepStatus
from tests.integration.conftest import settings_for
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration


def test_a_worker_whose_metrics_port_was_taken_starts_on_another(redis_server, monkeypatch):
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    picks = iter([taken])
    real = launcher.free_port
    monkeypatch.setattr(launcher, "free_port", lambda: next(picks, None) or real())
    settings = settings_for(redis_server, db=13)
    groups = ["cache", "compress", "classify", "infer-cheap", "finalize"]
    try:
        with Fleet(settings) as fleet:
            fleet.redis.flushdb()
            local = LocalFleet(settings, groups=groups).start(own_redis=False)
            try:
                # The first group's first pick was taken: it runs on another.
                assert taken not in local.metrics_ports.values()
                step = make_step(labels={"difficulty": 0.0})
                [result] = fleet.wait([fleet.submit(step)], timeout=60)
                assert result.status is StepStatus.ok
            finally:
                local.stop()
    finally:
        squatter.close()
