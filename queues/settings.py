"""Settings, read once from the environment (prefix ``TIERFLEET_``) and passed down explicitly."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TIERFLEET_",
        env_file=None,
        extra="ignore",
        populate_by_name=True,
        env_ignore_empty=True,  # VAR= (as compose passes an unset one) means unset
    )

    # Redis (the embedded default) or RabbitMQ (amqp://, production: it tracks deliveries).
    broker_url: str = "redis://127.0.0.1:6379/0"
    # Result backend and stores (ledger, budgets, caches, dead letters) are Redis: by default
    # the broker's, which a RabbitMQ broker cannot be, so there redis_url is required.
    result_backend: str | None = None
    redis_url: str | None = None

    tier_table: Path | None = None  # None: the shipped default (policies/tables/default.toml)
    price_table: Path | None = Field(
        default=None, description="your own prices, laid over policies/tables/prices.toml"
    )
    replay_data: Path | None = Field(
        default=None, description="RouterBench-format CSV file or folder for the replay provider"
    )
    tokenizer_encoding: str = "o200k_base"

    # Routing: "rules" (task kind, length, schema) or "learned" (the artifact that
    # `tierfleet train router` writes; the cheapest model whose predicted success >= target).
    router: str = Field(default="rules", pattern="^(rules|learned)$")
    router_artifact: Path | None = None
    router_target: float = Field(default=0.8, ge=0.0, le=1.0)
    # The learned acceptance check (`tierfleet train acceptance`): where a provider reports
    # no confidence, P(answer right | prompt, answer) stands in, judged against each tier's
    # accept_min_confidence.
    acceptance_artifact: Path | None = None
    # Shadow evaluation: this share of answers accepted below the top tier is also put to
    # the top tier's model; agreement goes to the shadow stream (`tierfleet shadow`).
    shadow_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    shadow_stream: str = "tf:shadow"

    cache_ttl_s: int = 24 * 3600
    # The semantic cache (Qdrant). It serves hits only with a verifier artifact, written by
    # `tierfleet train cache`: raw cosine is not a safe duplicate test.
    semantic_cache: bool = True
    cache_verifier: Path | None = None
    semantic_ttl_s: int | None = None  # None: cache_ttl_s
    semantic_candidates: int = Field(default=3, ge=1)  # nearest entries the verifier judges
    no_semantic_kinds: list[str] = Field(
        default_factory=lambda: ["tool_call"],
        description="task kinds never answered semantically (side effects, live data)",
    )
    qdrant_url: str | None = Field(
        default=None, validation_alias=AliasChoices("TIERFLEET_QDRANT_URL", "QDRANT_URL")
    )
    qdrant_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TIERFLEET_QDRANT_API_KEY", "QDRANT_API_KEY"),
    )
    qdrant_collection: str = "tierfleet_cache"
    vector_dir: Path = Path(".tierfleet/vectors")  # the embedded shard (one process owns it)
    vector_optimize_every: int = 5000  # new points between HNSW index builds (embedded)
    # Compression (policies/compression.py): the recent window is kept whole, older history
    # pruned; JSON tool output compacted, cut to the records the request needs past
    # tool_result_max_tokens; free text past text_max_tokens goes to the prompt compressor
    # (LLMLingua when compressor_model_path is set, else the lexical default).
    keep_last_messages: int = 2
    window_stride: int = 4  # the kept window moves in steps of this many (prefix-cache friendly)
    # For messages before the window, filled by worth per token; None: no cap. The default is
    # the largest cut that keeps >= 98% of used facts on tau-bench (BENCHMARKS.md).
    history_budget_tokens: int | None = 1400
    tool_result_max_tokens: int = 600
    text_max_tokens: int = 3000
    text_ratio: float = Field(default=0.5, gt=0.0, le=1.0)
    compressor_model_path: Path | None = None  # a local LLMLingua model (GPU workers)
    compressor_device: str = "cuda"
    # LongLLMLingua's conditioning on the question (LLMLingua v1 models); off: plain scoring.
    compressor_question_aware: bool = True
    # A one-line summary of each tool exchange the history budget drops, by the cheap tier
    # (a summarize step of its own, charged to the session); later calls carry it.
    summarize_dropped: bool = False
    summary_max_tokens: int = Field(default=120, ge=16)
    summary_ttl_s: int = Field(default=86_400, ge=60)  # how long a session's summaries live

    batch_flush_every: int = 16
    batch_flush_interval_s: float = 0.005  # a lone step waits this long for company

    # The batch lane (provider batch APIs): a job is submitted when a model has this many
    # steps parked or its oldest has waited this long; beat sends a poll this often.
    batch_job_max_steps: int = 500
    batch_job_wait_s: float = 60.0
    batch_poll_interval_s: float = 30.0
    batch_submit_grace_s: float = 300.0  # a job still "submitting" this long is resubmitted
    batch_poll_lock_s: float = 300.0  # one poller at a time; a dead one's lock expires

    max_transient_retries: int = 4
    retry_backoff_s: float = 0.5
    # A countdown (a retry's wait, a provider's Retry-After) is never longer than this.
    max_countdown_s: float = Field(default=900.0, gt=0.0)
    # Redis broker: a message unacknowledged this long goes back to its queue. Live workers
    # renew the lease on what they hold every quarter of it (workers/lease.py), so it bounds
    # how long a killed worker strands its steps, not how long a call may take. Any live
    # worker looks for such messages every unacked_restore_interval_s.
    visibility_timeout_s: int = Field(default=60, ge=2)
    unacked_restore_interval_s: int = Field(default=10, ge=1)
    # A message delivered this many times without finishing (its worker died each time: a
    # step that kills its worker) is dead-lettered instead of delivered again.
    max_deliveries: int = Field(default=3, ge=1)
    result_ttl_s: int = 7 * 24 * 3600

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
    # Ask OpenAI-style providers for token log-probabilities; their geometric-mean token
    # probability becomes the answer's confidence (judged against accept_min_confidence).
    request_logprobs: bool = False

    # Budgets, per session, per agent and per tenant: defaults for scopes that set none of
    # their own (Fleet.set_session_budget / set_agent_budget / set_tenant_budget). Hard
    # limits refuse the call that would cross them (budget_exceeded); past a soft limit a
    # step runs in economy mode.
    session_budget_usd: float | None = None  # hard; None = unlimited
    session_soft_budget_usd: float | None = None
    session_budget_tokens: int | None = None
    session_soft_budget_tokens: int | None = None
    agent_budget_usd: float | None = None
    agent_soft_budget_usd: float | None = None
    agent_budget_tokens: int | None = None
    agent_soft_budget_tokens: int | None = None
    # A tenant's limits span all its agents and sessions (the whole fleet).
    tenant_budget_usd: float | None = None
    tenant_soft_budget_usd: float | None = None
    tenant_budget_tokens: int | None = None
    tenant_soft_budget_tokens: int | None = None
    # Economy mode: start no higher than this tier (None: the cheapest), a history budget,
    # and this factor on the window, tool-result and max_tokens allowances.
    economy_max_tier: str | None = None
    economy_history_tokens: int = 1000
    economy_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    # max_tokens per task kind: a step asking more gets this much.
    output_tokens_by_kind: dict[str, int] = Field(
        default_factory=lambda: {
            "classify": 64,
            "extract": 1024,
            "tool_call": 1024,
            "summarize": 1024,
            "chat": 2048,
        }
    )
    simulated_latency_ms: float = 0.0  # per provider call, for the simulated provider

    # The key that seals envelopes between stages (queues/seal.py). Workers need it;
    # producers do not. Unset: derived from the broker URL (see README "Security").
    envelope_key: SecretStr | None = None

    ledger_stream: str = "tf:ledger"
    # Every provider call, recorded the moment its answer is in (before anything can fail):
    # the bill as providers see it, duplicates included.
    calls_stream: str = "tf:calls"
    # Workers refuse to start on a Redis that evicts keys when full (budgets would vanish).
    allow_evicting_redis: bool = False
    # Redis keeps the newest ledger_keep_entries of the ledger (and shadow) stream and
    # dead_keep_letters of tf.dead; older ones move to JSON Lines under archive_dir first
    # (a folder every finalize worker and the CLI share). None: never trimmed (Redis fills).
    ledger_keep_entries: int = Field(default=1_000_000, ge=100)
    dead_keep_letters: int = Field(default=10_000, ge=10)
    archive_dir: Path | None = Path(".tierfleet/archive")
    log_level: str = "INFO"
    log_json: bool = True

    def secrets(self) -> list[str]:
        """Every secret value set, for the log and error redactor."""
        keys = (
            self.openai_api_key,
            self.anthropic_api_key,
            self.openai_compatible_api_key,
            self.qdrant_api_key,
            self.envelope_key,
        )
        values = [k.get_secret_value() for k in keys if k is not None and k.get_secret_value()]
        for url in (self.broker_url, self.result_backend, self.redis_url):
            password = urlsplit(url).password if url else None
            if password:
                values.append(password)
        return values

    @model_validator(mode="after")
    def _stores_need_redis(self) -> Settings:
        if not self.broker_is_redis and self.redis_url is None:
            raise ValueError(
                f"the broker ({urlsplit(self.broker_url).scheme}://) is not Redis: set "
                "TIERFLEET_REDIS_URL for the stores (budgets, ledger, caches, dead letters, "
                "results)"
            )
        return self

    @model_validator(mode="after")
    def _learned_router_needs_its_artifact(self) -> Settings:
        if self.router == "learned" and self.router_artifact is None:
            raise ValueError(
                "TIERFLEET_ROUTER=learned needs TIERFLEET_ROUTER_ARTIFACT "
                "(written by `tierfleet train router`)"
            )
        return self

    @property
    def broker_is_redis(self) -> bool:
        return self.broker_url.startswith(REDIS_SCHEMES)

    @property
    def lanes_by_priority(self) -> bool:
        """Lanes as message priorities in one queue per tier (RabbitMQ), not queues in
        polling order (Redis): see queues/topology.py."""
        return not self.broker_is_redis

    @property
    def backend_url(self) -> str:
        """Results: the broker's Redis by default (so a step can still be answered when the
        store is full), else the store's."""
        return self.result_backend or (self.broker_url if self.broker_is_redis else self.store_url)

    @property
    def store_url(self) -> str:
        return self.redis_url or self.broker_url
