"""The provider test server for the adapter tests, reset before each test (once an earlier
test's slow calls are done: they would land on the next test's bill)."""

import time

import pytest

from tests.provider_handle import ServerHandle


@pytest.fixture
def api(provider_server: ServerHandle) -> ServerHandle:
    deadline = time.monotonic() + 10
    while provider_server.stats().get("in_flight", 0) > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    provider_server.post("/_reset", {})
    provider_server.post("/_config", {"batch_delay_s": 0.2})
    return provider_server
