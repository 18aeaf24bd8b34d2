"""Model providers behind one Protocol, chosen by the name the tier table gives each model.

Each HTTP provider needs a setting to be usable (an API key, or a server URL); without it the
provider is unavailable, and both the fleet's start and any step routed to it say which
variable to set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import anthropic
import openai

from policies.tokens import TokenCounter
from queues.settings import Settings
from workers.errors import PermanentError, ProviderUnavailable
from workers.ports import Provider, ProviderGate
from workers.providers.anthropic_messages import AnthropicMessages
from workers.providers.openai_chat import OpenAIChat, OpenAIWithBatch
from workers.providers.replay import ReplayProvider
from workers.providers.simulated import SimulatedProvider

ProviderFactory = Callable[[Settings, TokenCounter, ProviderGate | None], Provider]

# What each provider needs set, as (settings field, the variables that set it).
REQUIREMENTS: dict[str, tuple[str, str]] = {
    "openai": ("openai_api_key", "TIERFLEET_OPENAI_API_KEY (or OPENAI_API_KEY)"),
    "anthropic": ("anthropic_api_key", "TIERFLEET_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY)"),
    "openai-compatible": ("openai_compatible_base_url", "TIERFLEET_OPENAI_COMPATIBLE_BASE_URL"),
    "replay": ("replay_data", "TIERFLEET_REPLAY_DATA"),
}
# Providers with a batch API (the batch lane); the others answer batch-lane steps live.
BATCH_PROVIDERS = frozenset({"openai", "anthropic"})
# Self-hosted OpenAI-compatible servers mostly take any key; the SDK insists on one.
NO_KEY = "not-needed"


def _secret(value: object) -> str:
    get = getattr(value, "get_secret_value", None)
    return str(get()) if get else str(value)


def _openai(s: Settings, _: TokenCounter, gate: ProviderGate | None) -> Provider:
    client = openai.OpenAI(
        api_key=_secret(s.openai_api_key),
        base_url=s.openai_base_url,
        timeout=s.provider_timeout_s,
        max_retries=0,  # retries are ours (calls.retrying): one policy, visible in the logs
    )
    return OpenAIWithBatch("openai", client, s, gate)


def _openai_compatible(s: Settings, _: TokenCounter, gate: ProviderGate | None) -> Provider:
    key = s.openai_compatible_api_key
    client = openai.OpenAI(
        api_key=_secret(key) if key is not None else NO_KEY,
        base_url=s.openai_compatible_base_url,
        timeout=s.provider_timeout_s,
        max_retries=0,
    )
    return OpenAIChat("openai-compatible", client, s, gate)


def _anthropic(s: Settings, _: TokenCounter, gate: ProviderGate | None) -> Provider:
    client = anthropic.Anthropic(
        api_key=_secret(s.anthropic_api_key),
        base_url=s.anthropic_base_url,
        timeout=s.provider_timeout_s,
        max_retries=0,
    )
    return AnthropicMessages(client, s, gate)


PROVIDERS: dict[str, ProviderFactory] = {
    "simulated": lambda s, c, _: SimulatedProvider(c, s.simulated_latency_ms),
    "replay": lambda s, c, _: ReplayProvider(s.replay_data, c),
    "openai": _openai,
    "openai-compatible": _openai_compatible,
    "anthropic": _anthropic,
}


def unavailable(name: str, settings: Settings) -> str | None:
    """Why provider ``name`` cannot be used with these settings; None when it can."""
    if name not in PROVIDERS:
        return f"unknown provider {name!r}; known: {sorted(PROVIDERS)}"
    if name in REQUIREMENTS:
        field, variable = REQUIREMENTS[name]
        if getattr(settings, field) is None:
            return f"provider {name!r} is unavailable: set {variable}"
    return None


def provider_problems(settings: Settings, providers: Iterable[str]) -> list[str]:
    return [why for name in sorted(set(providers)) if (why := unavailable(name, settings))]


def build_provider(
    name: str, settings: Settings, counter: TokenCounter, gate: ProviderGate | None = None
) -> Provider:
    why = unavailable(name, settings)
    if why is not None:
        raise (PermanentError if name not in PROVIDERS else ProviderUnavailable)(why)
    return PROVIDERS[name](settings, counter, gate)
