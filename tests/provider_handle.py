"""A handle on the provider test server for tests: its URLs, faults, bill and stats."""

import json
import urllib.request
from typing import Any

from producers.fakes.provider_server.serve import RunningServer
from producers.fakes.provider_server.server import ProviderServer


def call(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


class ServerHandle:
    def __init__(self, running: RunningServer) -> None:
        self.running = running
        self.url = running.url
        self.openai_base_url = running.openai_base_url
        self.server: ProviderServer = running.server

    def post(self, path: str, body: Any) -> None:
        call(f"{self.url}{path}", body)

    def faults(self, *rules: dict[str, Any]) -> None:
        self.post("/_faults", list(rules))

    def bill(self) -> dict[str, Any]:
        return dict(call(f"{self.url}/_bill"))

    def stats(self) -> dict[str, int]:
        return dict(call(f"{self.url}/_stats"))

    def settings_fields(self, key: str) -> dict[str, object]:
        """Settings that point both API providers at this server, with ``key`` as the key."""
        return {
            "openai_api_key": key,
            "anthropic_api_key": key,
            "openai_base_url": self.openai_base_url,
            "anthropic_base_url": self.url,
        }


# A system prompt long enough (2000+ tokens) for the providers' prefix caches.
POLICY = "You are the airline's support agent. " + " ".join(
    f"Rule {i}: a passenger may change flight {i} once without a fee." for i in range(150)
)
SCHEMA = {
    "type": "object",
    "properties": {"action": {"type": "string", "enum": ["refund", "rebook"]}},
    "required": ["action"],
}
