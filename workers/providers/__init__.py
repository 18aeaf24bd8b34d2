"""Model providers behind one Protocol, chosen by the name the tier table gives each model."""

from __future__ import annotations

from collections.abc import Callable

from policies.tokens import TokenCounter
from queues.settings import Settings
from workers.errors import PermanentError
from workers.ports import Provider
from workers.providers.replay import ReplayProvider
from workers.providers.simulated import SimulatedProvider

ProviderFactory = Callable[[Settings, TokenCounter], Provider]

PROVIDERS: dict[str, ProviderFactory] = {
    "simulated": lambda s, c: SimulatedProvider(c, s.simulated_latency_ms),
    "replay": lambda s, c: ReplayProvider(s.replay_data, c),
}


def build_provider(name: str, settings: Settings, counter: TokenCounter) -> Provider:
    try:
        factory = PROVIDERS[name]
    except KeyError:
        raise PermanentError(f"unknown provider {name!r}; known: {sorted(PROVIDERS)}") from None
    return factory(settings, counter)
