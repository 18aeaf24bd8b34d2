"""Settings, read once from the environment (prefix ``TIERFLEET_``) and passed down explicitly.

``Settings`` is composed of the components' own configs (queues/config/: routing, caches,
compression, delivery, the batch lane, providers, budgets), each a small typed model with
its defaults and its cross-field rules; the variables keep their flat names
(``TIERFLEET_KEEP_LAST_MESSAGES``). A component is handed its config's type, and any
``Settings`` is one. What is left here is the fleet's own: broker, stores, seal, streams."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from queues.config.batch_lane import BatchLaneConfig
from queues.config.budgets import BudgetConfig
from queues.config.compression import CompressionConfig
from queues.config.delivery import DeliveryConfig
from queues.config.observability import ObservabilityConfig
from queues.config.providers import ProviderConfig
from queues.config.routing import RoutingConfig
from queues.config.semantic_cache import SemanticCacheConfig

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class Settings(
    BaseSettings,
    RoutingConfig,
    SemanticCacheConfig,
    CompressionConfig,
    DeliveryConfig,
    BatchLaneConfig,
    ProviderConfig,
    BudgetConfig,
    ObservabilityConfig,
):
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
            self.flower_basic_auth,
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
