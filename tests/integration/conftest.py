"""Integration fixtures: the real fleet (worker groups as separate Celery processes) on the
redis-server the tests started."""

import time
from collections.abc import Iterator

import pytest

from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.local.services import EmbeddedRedis
from queues import keys
from queues.bus import CeleryBus
from queues.seal import sealer_for
from queues.settings import Settings
from queues.topology import DEAD, queue_names

ENVELOPE_KEY = "integration-tests-envelope-key"


def settings_for(redis_server: EmbeddedRedis, db: int = 0, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "broker_url": f"redis://127.0.0.1:{redis_server.port}/{db}",
        "envelope_key": ENVELOPE_KEY,
        "simulated_latency_ms": 0.0,
        "batch_flush_interval_s": 0.01,
        "retry_backoff_s": 0.05,
        # On by default in a deployment; here only where a test is about it (the cache
        # worker then loads MiniLM, and "Question <uuid>" steps sit at cosine 0.98).
        "semantic_cache": False,
    }
    return Settings.model_validate({**fields, **overrides})


def wait_for(check, timeout: float = 30.0, every_s: float = 0.1):
    """What ``check`` returns once it is truthy; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(every_s)
    raise AssertionError("timed out")


def wait_for_a_call_under_way(client, timeout: float = 30.0) -> None:
    """Until the fleet's unacked messages have held still for 100 ms: the solo workers are
    inside a (simulated) provider call, none of them fetching. A worker is killed only then:
    Redis's BRPOP hands a message over before the worker records it as unacked, so a kill
    in that instant loses it (the transport's own gap; README, "Redelivery")."""
    deadline = time.monotonic() + timeout
    seen, since = -1, time.monotonic()
    while True:
        unacked = int(client.hlen("unacked"))
        if unacked != seen:
            seen, since = unacked, time.monotonic()
        elif unacked > 0 and time.monotonic() - since > 0.1:
            return
        assert time.monotonic() < deadline, "no call was ever seen under way"
        time.sleep(0.005)


def sealed_bus(fleet: Fleet) -> CeleryBus:
    """A bus that sends envelopes as the fleet's own stages do (tests that start a step
    mid-path, e.g. straight at a tier's queue)."""
    s = fleet.settings
    sealer = sealer_for(s.envelope_key, s.broker_url)
    return CeleryBus(fleet.app, sealer, lanes_by_priority=s.lanes_by_priority)


# Kombu's own keys on a Redis broker: queue bindings and their bookkeeping, the unacked
# hash and index (bounded by prefetch: what is fetched and not yet acknowledged).
KOMBU_KEYS = ("_kombu.", "unacked", "unacked_index")


def unbounded_keys(fleet: Fleet) -> list[str]:
    """Keys in the fleet's Redis with neither a TTL nor a cap the fleet enforces. Capped:
    the ledger and shadow streams and tf.dead (archived past their caps). Work queues are
    bounded by the workers that drain them, so a queue's list (any priority) is fine."""
    s = fleet.settings
    capped = {s.ledger_stream, s.shadow_stream, s.calls_stream, DEAD, *keys.CAPPED}
    table_tiers = list(fleet.table.names)
    queues = set(queue_names(table_tiers))
    found = []
    for raw in fleet.redis.scan_iter(count=1000):
        key = raw.decode()
        if int(fleet.redis.ttl(raw)) != -1:  # has a TTL, or is already gone
            continue
        if key in capped or key.startswith(KOMBU_KEYS):
            continue
        if key.split("\x06\x16")[0] in queues:  # kombu's priority sub-queues
            continue
        found.append(key)
    return sorted(found)


@pytest.fixture(scope="session")
def fleet_settings(redis_server: EmbeddedRedis) -> Settings:
    return settings_for(redis_server)


@pytest.fixture(scope="session")
def local_fleet(fleet_settings: Settings) -> Iterator[LocalFleet]:
    local = LocalFleet(fleet_settings)
    local.start(own_redis=False)
    yield local
    local.stop()


@pytest.fixture(scope="session")
def fleet(local_fleet: LocalFleet) -> Iterator[Fleet]:
    with Fleet(local_fleet.settings) as fleet:
        yield fleet
