"""The semantic cache layer the cache worker owns: embed the question, search its scope in
Qdrant, score the nearest entries (a trained verifier, or the cosine), and remember answered
steps. Whether the best one is served is the cache stage's call, against the threshold the
deployment's audits keep (workers/hit_bound.py).

Lookups and stores both run in the cache worker, so the embedded shard has one owner; the
finalize worker asks for a store by message (``tierfleet.cache_store``)."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog

from policies.semantic_cache import SemanticScope
from queues.config.semantic_cache import SemanticCacheConfig
from queues.messages import Outcome
from queues.records import CachedAnswer
from workers.semantic_ports import Embedder, HitVerifier, SemanticEntry, VectorStore
from workers.stores.vectors import open_vector_store

log = structlog.get_logger("tierfleet.semantic")

PURGE_EVERY_S = 60.0  # expired entries are also filtered at lookup; this frees their space


@dataclass(frozen=True)
class Candidate:
    """The best-scored stored answer in scope: served if its score clears the threshold the
    deployment's audits set (workers/hit_bound.py), perhaps judged either way."""

    answer: CachedAnswer
    similarity: float
    score: float


@dataclass(frozen=True)
class CosineVerifier:
    """The score without a trained verifier: the embeddings' cosine, with a prior threshold
    that the judged samples of the deployment's own traffic then move."""

    prior: float
    embedder: str

    @property
    def threshold(self) -> float:
        return self.prior

    def score_candidates(
        self, u: Any, question: str, candidates: Sequence[tuple[Any, str]]
    ) -> list[float]:
        return [float(np.dot(u, v)) for v, _ in candidates]


@dataclass
class SemanticLayer:
    embedder: Embedder
    store: VectorStore
    verifier: HitVerifier
    candidates: int
    ttl_s: float
    scorer: str = "cosine"  # what the score is: each scorer's threshold is audited apart
    memo_size: int = 4096
    _memo: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    _last_purge: float = 0.0

    @property
    def embedder_id(self) -> str:
        return f"{self.embedder.model}@{self.embedder.version}"  # as MiniLMEmbedder.id

    def vector(self, text: str) -> Any:
        """The question's vector; a step's lookup and its later store embed it once."""
        if text in self._memo:
            self._memo.move_to_end(text)
            return self._memo[text]
        vec = self.embedder.embed([text])[0]
        self._memo[text] = vec
        if len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return vec

    def lookup(self, question: str, scope: SemanticScope, now: float) -> Candidate | None:
        """The best-scored live entry of this scope, whatever its score."""
        vec = self.vector(question)
        matches = self.store.nearest(vec, scope.key, scope.tier_floor, now, self.candidates)
        cached = [CachedAnswer.model_validate(m.payload) for m in matches]
        questions = [c.question for c in cached]
        scores = self.verifier.score_candidates(
            vec, question, [(m.vector, q) for m, q in zip(matches, questions, strict=True)]
        )
        ranked = sorted(
            zip(scores, matches, cached, strict=True), key=lambda row: row[0], reverse=True
        )
        if not ranked:
            return None
        score, match, answer = ranked[0]
        # The score unrounded: it is compared with the threshold (the ledger rounds it).
        return Candidate(answer, round(float(match.similarity), 6), float(score))

    def remember(
        self,
        question: str,
        scope: SemanticScope,
        outcome: Outcome,
        step_id: str,
        tier_rank: int,
        now: float,
    ) -> None:
        entry = SemanticEntry(
            point_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"tierfleet:{step_id}")),
            vector=self.vector(question),
            scope=scope.key,
            prompt_version=scope.prompt_version,
            tier_rank=tier_rank,
            expires_at=now + self.ttl_s,
            payload=CachedAnswer.of(
                outcome, step_id, question=question, embedder=self.embedder_id, stored_at=now
            ).to_record(),
        )
        self.store.upsert([entry])
        if now - self._last_purge >= PURGE_EVERY_S:
            self._last_purge = now
            purged = self.store.purge_expired(now)
            if purged:
                log.info("semantic_purged", entries=purged)


def build_semantic_layer(settings: SemanticCacheConfig) -> tuple[SemanticLayer | None, str]:
    """The layer, or None and why not. A missing verifier or a store that cannot be opened
    turns the semantic layer off with the reason logged; the exact cache keeps working."""
    if not settings.semantic_cache:
        return None, "TIERFLEET_SEMANTIC_CACHE is off"
    from workers.ml.cross_encoder import load_hit_verifier
    from workers.ml.embedder import MiniLMEmbedder

    # One question a lookup: one thread does it in milliseconds, and the worker's neighbours
    # on the machine keep their cores (a pool per core spins between lookups).
    embedder = MiniLMEmbedder(threads=1)
    verifier: HitVerifier = CosineVerifier(settings.semantic_prior_threshold, embedder.id)
    scorer = f"cosine@{embedder.id}"
    if settings.cache_verifier is not None:
        try:
            verifier = load_hit_verifier(settings.cache_verifier)
        except (OSError, ValueError, KeyError) as exc:
            return None, f"cannot load the cache verifier {settings.cache_verifier}: {exc}"
        if verifier.embedder != embedder.id:
            return None, f"the verifier was trained on {verifier.embedder}, not {embedder.id}"
        scorer = f"verifier:{settings.cache_verifier.name}@{verifier.threshold:.6f}"
    try:
        store = open_vector_store(settings, embedder.dim)
    except Exception as exc:  # qdrant-edge raises plain errors (e.g. the shard is open elsewhere)
        return None, (
            f"cannot open the vector store: {exc}. The embedded store has one owner: run one "
            "cache worker process (--pool solo or threads), or set QDRANT_URL"
        )
    ttl = settings.semantic_ttl_s if settings.semantic_ttl_s is not None else settings.cache_ttl_s
    layer = SemanticLayer(embedder, store, verifier, settings.semantic_candidates, ttl, scorer)
    return layer, ""
