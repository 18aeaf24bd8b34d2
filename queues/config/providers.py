"""How providers are called: keys and base URLs, timeouts and tries, concurrency, the
fleet-wide limits and circuit breaker, prompt-cache marks and log-probabilities."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, SecretStr


class ProviderConfig(BaseModel):
    # Providers. A key left unset makes its provider unavailable; the fleet names the variable.
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TIERFLEET_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = None  # None: api.openai.com
    anthropic_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TIERFLEET_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"),
    )
    anthropic_base_url: str | None = None  # None: api.anthropic.com
    openai_compatible_base_url: str | None = None  # a vLLM, Ollama or TGI server's /v1
    openai_compatible_api_key: SecretStr | None = None  # most self-hosted servers need none
    provider_timeout_s: float = 60.0
    provider_max_attempts: int = 3  # in-call tries for a 429/5xx/timeout before requeueing
    provider_retry_after_cap_s: float = 20.0  # a longer Retry-After waits on the queue instead
    provider_concurrency: int = 8  # concurrent calls per provider in one worker process
    # Fleet-wide caps on calls in flight, across every replica (a Redis semaphore): by
    # provider name ({"openai": 64}) and by API model id ({"gpt-4o": 16}). Unset: none.
    provider_limits: dict[str, int] = Field(default_factory=dict)
    model_limits: dict[str, int] = Field(default_factory=dict)
    provider_slot_wait_s: float = Field(default=10.0, ge=0.0)  # then the step waits queued
    # The circuit breaker: this many transient failures in a row open a provider's circuit
    # for breaker_cooldown_s; meanwhile its steps wait on their queue with a countdown.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=30.0, gt=0.0)
    # Waits on a closed gate cost a step none of its retries; past this many it is
    # dead-lettered (at the default cooldown, about 20 minutes of a provider down).
    max_gate_waits: int = Field(default=40, ge=1)
    prompt_cache_breakpoints: bool = True  # Anthropic cache_control on the static prefix
    # Ask OpenAI-style providers for token log-probabilities (on by default: they cost
    # nothing); their geometric-mean token probability becomes the answer's confidence,
    # judged against the tier's accept_min_confidence.
    request_logprobs: bool = True

    simulated_latency_ms: float = 0.0  # per provider call, for the simulated provider
    # Where a local model given as a GGUF file is kept as a plain copy (made once).
    model_cache_dir: Path = Path(".tierfleet/models")
