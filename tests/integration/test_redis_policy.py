"""A worker refuses to start on a Redis that evicts keys when full (budgets would vanish),
and starts on one that refuses writes instead."""

import os
import subprocess
import sys
import time

import pytest
import redis

from producers.fleet import Fleet
from producers.local.launcher import settings_env
from producers.local.services import EmbeddedRedis
from queues.settings import Settings
from tests.integration.conftest import settings_for

pytestmark = pytest.mark.integration

WORKER = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "tf.finalize"]


def start_worker(server: EmbeddedRedis, **overrides: object) -> subprocess.Popen[bytes]:
    settings = settings_for(server, **overrides)
    env = {**os.environ, **settings_env(settings)}
    return subprocess.Popen(
        [*WORKER, "--pool", "solo", "--loglevel", "WARNING"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def evicting_redis():
    server = EmbeddedRedis().start()
    redis.Redis(port=server.port).config_set("maxmemory-policy", "volatile-lru")
    yield server
    server.stop()


def test_a_worker_refuses_an_evicting_redis_and_says_why(evicting_redis):
    worker = start_worker(evicting_redis)
    out, _ = worker.communicate(timeout=60)
    assert worker.returncode != 0
    assert b"evicts keys when full (maxmemory-policy volatile-lru)" in out
    assert b"noeviction" in out


def answers_ping(settings: Settings, worker: subprocess.Popen[bytes]) -> bool:
    with Fleet(settings) as fleet:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and worker.poll() is None:
            if fleet.app.control.ping(timeout=0.5):
                return True
    return False


def test_the_refusal_can_be_overridden_and_noeviction_starts(evicting_redis, redis_server):
    for server, extra in ((evicting_redis, {"allow_evicting_redis": True}), (redis_server, {})):
        worker = start_worker(server, db=9, **extra)
        try:
            assert answers_ping(settings_for(server, db=9), worker)
        finally:
            worker.kill()
            worker.wait()
