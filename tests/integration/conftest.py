"""Integration fixtures: the real fleet (worker groups as separate Celery processes) on the
redis-server the tests started."""

from collections.abc import Iterator

import pytest

from producers.embedded import EmbeddedRedis
from producers.fleet import Fleet
from producers.local_fleet import LocalFleet
from queues.settings import Settings


def settings_for(redis_server: EmbeddedRedis, db: int = 0, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "broker_url": f"redis://127.0.0.1:{redis_server.port}/{db}",
        "simulated_latency_ms": 0.0,
        "batch_flush_interval_s": 0.01,
        "retry_backoff_s": 0.05,
    }
    return Settings.model_validate({**fields, **overrides})


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
