"""The caches' config: the exact cache's time to live, the semantic cache and its store."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, SecretStr


class SemanticCacheConfig(BaseModel):
    cache_ttl_s: int = 24 * 3600
    # The semantic cache (Qdrant). A candidate's score is the verifier's (an artifact written
    # by `tierfleet train cache`), or without one the embeddings' cosine; either way the
    # threshold it is served at is set by judged samples of this deployment's own would-be
    # hits (policies/hit_audit.py), the offline threshold only the prior.
    semantic_cache: bool = True
    cache_verifier: Path | None = None
    # The cosine prior without a verifier: the lowest cosine serving at most 5% wrong hits on
    # the tuning half of the Quora pairs (0.9914, `bench cache-audit`), never reported on.
    semantic_prior_threshold: float = Field(default=0.991, gt=0.0, le=1.0)
    # Candidates scoring this far below the prior (or the served threshold) are judged too,
    # so the threshold can come down where the traffic allows it.
    semantic_explore_margin: float = Field(default=0.05, ge=0.0, le=1.0)
    semantic_audit_share: float = Field(default=0.1, ge=0.0, le=1.0)
    # Until this many pairs at or above the threshold are judged, every would-be hit is.
    semantic_audit_warmup: int = Field(default=20, ge=0)
    semantic_max_wrong_rate: float = Field(default=0.05, gt=0.0, lt=1.0)
    semantic_audit_confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    semantic_audit_window: int = Field(default=2000, ge=10)  # the latest judged pairs used
    semantic_audit_refresh_s: float = Field(default=5.0, ge=0.0)  # how often it is recomputed
    semantic_judge_tier: str | None = None  # the tier whose model judges; None: the top tier
    semantic_ttl_s: int | None = None  # None: cache_ttl_s
    semantic_candidates: int = Field(default=3, ge=1)  # nearest entries scored
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
