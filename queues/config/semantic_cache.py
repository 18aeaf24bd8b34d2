"""The caches' config: the exact cache's time to live, the semantic cache and its store."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, SecretStr


class SemanticCacheConfig(BaseModel):
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
