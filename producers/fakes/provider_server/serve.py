"""Running the test server: in a background thread (tests, benchmarks) or in the foreground."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import uvicorn

from producers.fakes.provider_server.server import ProviderServer
from producers.local.services import free_port


@dataclass
class RunningServer:
    server: ProviderServer
    port: int
    _uvicorn: uvicorn.Server
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(timeout=10)


def serve_in_thread(server: ProviderServer | None = None, port: int = 0) -> RunningServer:
    server = server or ProviderServer()
    port = port or free_port()
    config = uvicorn.Config(
        server.app(), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, name="provider-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not runner.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the provider test server did not start on port {port}")
        time.sleep(0.01)
    return RunningServer(server, port, runner, thread)


def serve_forever(port: int, batch_delay_s: float) -> None:
    uvicorn.run(
        ProviderServer.with_delay(batch_delay_s).app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
