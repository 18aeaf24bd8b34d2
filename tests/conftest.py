from collections.abc import Iterator

import pytest
import redis

from producers.fakes.provider_server.serve import serve_in_thread
from producers.fakes.provider_server.server import ProviderServer
from producers.local.services import EmbeddedRedis
from tests.provider_handle import ServerHandle


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """A redis-server the tests start on a free port (never one that happens to run)."""
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, db=15)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def provider_server() -> Iterator[ServerHandle]:
    """The provider test server (OpenAI and Anthropic APIs) on a loopback port."""
    running = serve_in_thread(ProviderServer.with_delay(0.2))
    yield ServerHandle(running)
    running.stop()
