"""Settings, read once from the environment (prefix ``TIERFLEET_``) and passed down explicitly."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TIER_TABLE = Path(__file__).resolve().parent.parent / "policies" / "tables" / "default.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIERFLEET_", env_file=None, extra="ignore")

    broker_url: str = "redis://127.0.0.1:6379/0"
    # Result backend and stores (ledger, budgets, exact cache) default to the broker's Redis.
    result_backend: str | None = None
    redis_url: str | None = None

    tier_table: Path = DEFAULT_TIER_TABLE
    replay_data: Path | None = Field(
        default=None, description="RouterBench-format CSV file or folder for the replay provider"
    )
    tokenizer_encoding: str = "o200k_base"

    cache_ttl_s: int = 24 * 3600
    keep_last_messages: int = 8
    tool_result_max_tokens: int = 600

    batch_flush_every: int = 16
    batch_flush_interval_s: float = 0.005  # a lone step waits this long for company

    max_transient_retries: int = 4
    retry_backoff_s: float = 0.5
    visibility_timeout_s: int = 3600
    result_ttl_s: int = 7 * 24 * 3600

    session_budget_usd: float | None = None  # default hard limit; None = unlimited
    simulated_latency_ms: float = 0.0  # per provider call, for the simulated provider

    ledger_stream: str = "tf:ledger"
    ledger_maxlen: int = 1_000_000
    log_level: str = "INFO"
    log_json: bool = True

    @property
    def backend_url(self) -> str:
        return self.result_backend or self.broker_url

    @property
    def store_url(self) -> str:
        return self.redis_url or self.broker_url
