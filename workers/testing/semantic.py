"""The semantic cache without a model or Qdrant: a word-hash embedder, an in-memory vector
store with the Qdrant stores' contract, and a verifier that reads the cosine alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.cache_verifier import Verifier
from workers.semantic import SemanticLayer
from workers.semantic_ports import SemanticEntry, SemanticMatch


class WordEmbedder:
    """A plain embedder for worker tests: each word hashes to a fixed random direction, a text
    is the normalised sum, so shared words mean high cosine (the real one is MiniLM)."""

    model = "words"
    version = "1"
    dim = 64

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> Any:
        import hashlib

        import numpy as np

        self.calls += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                seed = int(hashlib.sha256(word.strip("?.!,").encode()).hexdigest()[:8], 16)
                out[i] += np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)
            out[i] /= max(1e-9, float(np.linalg.norm(out[i])))
        return out


@dataclass
class MemoryVectorStore:
    """The vector store's contract in memory (the Qdrant ones are tested against Qdrant)."""

    entries: dict[str, SemanticEntry] = field(default_factory=dict)

    def upsert(self, entries: Sequence[SemanticEntry]) -> None:
        self.entries.update({e.point_id: e for e in entries})

    def nearest(
        self, vector: Any, scope: str, min_tier_rank: int, now: float, limit: int
    ) -> list[SemanticMatch]:
        import numpy as np

        live = [
            e
            for e in self.entries.values()
            if e.scope == scope and e.tier_rank >= min_tier_rank and e.expires_at > now
        ]
        found = [SemanticMatch(float(np.dot(vector, e.vector)), e.vector, e.payload) for e in live]
        return sorted(found, key=lambda m: -m.similarity)[:limit]

    def _drop(self, doomed: list[str]) -> int:
        for point_id in doomed:
            del self.entries[point_id]
        return len(doomed)

    def drop_prompt_version(self, prompt_version: str) -> int:
        return self._drop(
            [k for k, e in self.entries.items() if e.prompt_version == prompt_version]
        )

    def purge_expired(self, now: float) -> int:
        return self._drop([k for k, e in self.entries.items() if e.expires_at <= now])

    def count(self) -> int:
        return len(self.entries)

    def close(self) -> None:
        """Nothing to close: the store is a dict."""


def cosine_verifier(dim: int, min_cosine: float, embedder: str = "words@1") -> Verifier:
    """A verifier whose decision is cosine >= ``min_cosine`` (score 0.5 exactly there): the
    network reads only the cosine feature. Trained verifiers are tested on real pairs."""
    import numpy as np

    from policies.cache_verifier import Calibration

    width = 2 + 15 + 2 * dim
    hidden_w = np.zeros((width, 1), dtype=np.float32)
    hidden_w[0, 0] = 1.0
    steep = 200.0
    return Verifier(
        mean=np.zeros(width, dtype=np.float32),
        scale=np.ones(width, dtype=np.float32),
        hidden_w=hidden_w,
        hidden_b=np.zeros(1, dtype=np.float32),
        out_w=np.array([steep], dtype=np.float32),
        out_b=-steep * min_cosine,
        idf={},
        default_idf=1.0,
        calibration=Calibration(0.5, 0.05, 1.0, 0.0, 0),
        embedder=embedder,
    )


def semantic_layer(min_cosine: float = 0.9, ttl_s: float = 3600) -> SemanticLayer:
    embedder = WordEmbedder()
    return SemanticLayer(
        embedder, MemoryVectorStore(), cosine_verifier(embedder.dim, min_cosine), 3, ttl_s
    )
