"""Model providers behind one Protocol, chosen by the name the tier table gives each model.

Each HTTP provider needs a setting to be usable (an API key, or a server URL); without it the
provider is unavailable, and both the fleet's start and any step routed to it say which
variable to set.

The SDKs and engines are imported when a provider is built, not with this module: a worker
whose tiers are all simulated or replayed starts in a second instead of four.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from policies.tiers import ModelSpec
from policies.tokens import TokenCounter
from queues.settings import Settings
from workers.errors import PermanentError, ProviderUnavailable
from workers.ports import Provider, ProviderGate
from workers.providers.replay import ReplayProvider
from workers.providers.simulated import SimulatedProvider

ProviderFactory = Callable[
    [Settings, TokenCounter, ProviderGate | None, ModelSpec | None], Provider
]

# Self-hosted OpenAI-compatible servers mostly take any key; the SDK insists on one.
NO_KEY = "not-needed"


def _secret(value: object) -> str:
    get = getattr(value, "get_secret_value", None)
    return str(get()) if get else str(value)


def _openai(s: Settings, _: TokenCounter, gate: ProviderGate | None, __: Any) -> Provider:
    import openai

    from workers.providers.openai_chat import OpenAIWithBatch

    client = openai.OpenAI(
        api_key=_secret(s.openai_api_key),
        base_url=s.openai_base_url,
        timeout=s.provider_timeout_s,
        max_retries=0,  # retries are ours (calls.retrying): one policy, visible in the logs
    )
    return OpenAIWithBatch("openai", client, s, gate)


def _openai_compatible(
    s: Settings, _: TokenCounter, gate: ProviderGate | None, __: Any
) -> Provider:
    import openai

    from workers.providers.openai_chat import OpenAIChat

    key = s.openai_compatible_api_key
    client = openai.OpenAI(
        api_key=_secret(key) if key is not None else NO_KEY,
        base_url=s.openai_compatible_base_url,
        timeout=s.provider_timeout_s,
        max_retries=0,
    )
    return OpenAIChat("openai-compatible", client, s, gate)


def _anthropic(s: Settings, _: TokenCounter, gate: ProviderGate | None, __: Any) -> Provider:
    import anthropic

    from workers.providers.anthropic_messages import AnthropicMessages

    client = anthropic.Anthropic(
        api_key=_secret(s.anthropic_api_key),
        base_url=s.anthropic_base_url,
        timeout=s.provider_timeout_s,
        max_retries=0,
    )
    return AnthropicMessages(client, s, gate)


@dataclass(frozen=True)
class ProviderEntry:
    """One provider: how it is built, what it needs set (the settings field and the
    variables that set it), and whether it has a batch API (the batch lane parks steps for
    it; the others answer batch-lane steps live)."""

    build: ProviderFactory
    needs: tuple[str, str] | None = None
    batch_api: bool = False


def _local(s: Settings, _: TokenCounter, __: Any, model: ModelSpec | None) -> Provider:
    from workers.providers.local import build_local

    if model is None or model.local is None:
        raise PermanentError(
            "the local provider runs a model its tier table entry describes (path, hourly_usd)"
        )
    return build_local(model.local, s.model_cache_dir)


PROVIDERS: dict[str, ProviderEntry] = {
    "simulated": ProviderEntry(lambda s, c, *_: SimulatedProvider(c, s.simulated_latency_ms)),
    "replay": ProviderEntry(
        lambda s, c, *_: ReplayProvider(s.replay_data, c),
        needs=("replay_data", "TIERFLEET_REPLAY_DATA"),
    ),
    "openai": ProviderEntry(
        _openai,
        needs=("openai_api_key", "TIERFLEET_OPENAI_API_KEY (or OPENAI_API_KEY)"),
        batch_api=True,
    ),
    "openai-compatible": ProviderEntry(
        _openai_compatible,
        needs=("openai_compatible_base_url", "TIERFLEET_OPENAI_COMPATIBLE_BASE_URL"),
    ),
    "anthropic": ProviderEntry(
        _anthropic,
        needs=("anthropic_api_key", "TIERFLEET_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY)"),
        batch_api=True,
    ),
    "local": ProviderEntry(_local),
}


def provider_key(model: ModelSpec) -> str:
    """What a worker keeps one provider per: the provider's name (one client serves all its
    models), or for a model the worker runs itself, the model (one engine each)."""
    return model.name if model.local is not None else model.provider


def has_batch_api(name: str) -> bool:
    entry = PROVIDERS.get(name)
    return entry is not None and entry.batch_api


def unavailable(name: str, settings: Settings) -> str | None:
    """Why provider ``name`` cannot be used with these settings; None when it can."""
    if name not in PROVIDERS:
        return f"unknown provider {name!r}; known: {sorted(PROVIDERS)}"
    needs = PROVIDERS[name].needs
    if needs is not None and getattr(settings, needs[0]) is None:
        return f"provider {name!r} is unavailable: set {needs[1]}"
    return None


def provider_problems(settings: Settings, providers: Iterable[str]) -> list[str]:
    return [why for name in sorted(set(providers)) if (why := unavailable(name, settings))]


def build_provider(
    name: str,
    settings: Settings,
    counter: TokenCounter,
    gate: ProviderGate | None = None,
    model: ModelSpec | None = None,
) -> Provider:
    why = unavailable(name, settings)
    if why is not None:
        raise (PermanentError if name not in PROVIDERS else ProviderUnavailable)(why)
    return PROVIDERS[name].build(settings, counter, gate, model)
