"""The Protocols of the semantic cache: the embedder, the pair scorer, the hit verifier, the
vector store with the entries it keeps, and the store of judged would-be hits. Real
adapters: workers/ml (MiniLM, the cross-encoder), workers/stores/vectors.py (Qdrant) and
workers/stores/audits.py; doubles: workers/testing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Embedder(Protocol):
    """Text to unit vectors (a dot product is the cosine)."""

    model: str
    version: str

    def embed(self, texts: Sequence[str]) -> Any: ...  # float32 array, one row per text


class PairScorer(Protocol):
    """Reads two texts together: one logit per pair, higher when they ask the same thing."""

    id: str

    def logits(self, pairs: Sequence[tuple[str, str]]) -> Any: ...  # float32, one per pair


class HitVerifier(Protocol):
    """Judges whether stored questions ask what this one asks, with a calibrated threshold:
    a score at or above it is served."""

    @property
    def threshold(self) -> float: ...

    @property
    def embedder(self) -> str: ...  # the embedding model it was trained with

    def score_candidates(
        self, u: Any, question: str, candidates: Sequence[tuple[Any, str]]
    ) -> list[float]: ...


@dataclass(frozen=True)
class SemanticEntry:
    """One answered question in the vector store. ``scope`` is matched exactly,
    ``tier_rank`` as a floor, ``expires_at`` against the clock."""

    point_id: str  # a UUID derived from the step id: a redelivered store writes it once
    vector: Any
    scope: str
    prompt_version: str
    tier_rank: int
    expires_at: float
    payload: dict[str, Any]  # question, answer, step_id, tier, model, provider, embedder...


@dataclass(frozen=True)
class SemanticMatch:
    similarity: float
    vector: Any
    payload: dict[str, Any]


class VectorStore(Protocol):
    """The semantic cache's store (Qdrant: embedded edge shard or a server)."""

    def upsert(self, entries: Sequence[SemanticEntry]) -> None: ...

    def nearest(
        self, vector: Any, scope: str, min_tier_rank: int, now: float, limit: int
    ) -> list[SemanticMatch]:
        """The closest live entries of exactly this scope, best first."""
        ...

    def drop_prompt_version(self, prompt_version: str) -> int:
        """Delete every entry of a prompt version; return how many there were."""
        ...

    def purge_expired(self, now: float) -> int: ...

    def count(self) -> int: ...


class Audits(Protocol):
    """The semantic cache's judged would-be hits (workers/stores/audits.py)."""

    def append(self, entry: dict[str, Any]) -> None: ...

    def recent(self, count: int) -> list[dict[str, Any]]:
        """The latest ``count`` entries, newest first."""
        ...

    def publish(self, scorer: str, state: dict[str, Any]) -> None:
        """The threshold a cache worker now serves this scorer's hits at, and why."""
        ...

    def published(self) -> dict[str, dict[str, Any]]: ...
