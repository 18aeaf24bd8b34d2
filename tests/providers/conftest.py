"""The provider test server for the adapter tests, reset before each test."""

import pytest

from tests.provider_handle import ServerHandle


@pytest.fixture
def api(provider_server: ServerHandle) -> ServerHandle:
    provider_server.post("/_reset", {})
    provider_server.post("/_config", {"batch_delay_s": 0.2})
    return provider_server
