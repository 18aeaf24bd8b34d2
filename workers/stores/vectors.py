"""The semantic cache's vector store: Qdrant, embedded or as a server, behind one adapter.

- ``EdgeVectorStore`` (the default): the Qdrant engine in-process (qdrant-edge-py), one
  shard directory owned by the cache worker process (a second process cannot open it).
- ``ServerVectorStore``: a Qdrant server through qdrant-client, when ``QDRANT_URL`` is set;
  any number of cache workers may share it.

Both keep the same payload: ``scope`` (matched exactly), ``prompt_version`` (for
invalidation), ``tier_rank`` (a floor) and ``expires_at`` (the entry's TTL), each indexed.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from queues.config.semantic_cache import SemanticCacheConfig
from workers.semantic_ports import SemanticEntry, SemanticMatch, VectorStore

VECTOR = "v"
INDEXED = {
    "scope": "keyword",
    "prompt_version": "keyword",
    "tier_rank": "integer",
    "expires_at": "float",
}


def _record(entry: SemanticEntry) -> dict[str, Any]:
    return {
        **entry.payload,
        "scope": entry.scope,
        "prompt_version": entry.prompt_version,
        "tier_rank": entry.tier_rank,
        "expires_at": entry.expires_at,
    }


class EdgeVectorStore:
    """An embedded Qdrant shard. HNSW is built by ``optimize()``, which runs after every
    ``optimize_every`` new points; until then new points are searched without the index,
    which a scope filter keeps small."""

    def __init__(self, path: Path, dim: int, optimize_every: int = 5000) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self.path = path
        if (path / "segments").exists():
            self._shard = qe.EdgeShard.load(str(path))
        else:
            path.mkdir(parents=True, exist_ok=True)
            config = qe.EdgeConfig(
                vectors={VECTOR: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)}
            )
            self._shard = qe.EdgeShard.create(str(path), config)
            kinds = {
                "keyword": qe.PayloadSchemaType.Keyword,
                "integer": qe.PayloadSchemaType.Integer,
                "float": qe.PayloadSchemaType.Float,
            }
            for name, kind in INDEXED.items():
                self._shard.update(qe.UpdateOperation.create_field_index(name, kinds[kind]))
        self._lock = threading.Lock()  # the shard is one per process; threads take turns
        self.optimize_every = optimize_every
        self._since_optimize = 0

    def _filter(self, scope: str, min_tier_rank: int, now: float) -> Any:
        qe = self._qe
        return qe.Filter(
            must=[
                qe.FieldCondition(key="scope", match=qe.MatchValue(scope)),
                qe.FieldCondition(key="tier_rank", range=qe.RangeFloat(gte=float(min_tier_rank))),
                qe.FieldCondition(key="expires_at", range=qe.RangeFloat(gt=now)),
            ]
        )

    def upsert(self, entries: Sequence[SemanticEntry]) -> None:
        qe = self._qe
        points = [
            qe.Point(e.point_id, {VECTOR: [float(x) for x in e.vector]}, _record(e))
            for e in entries
        ]
        with self._lock:
            self._shard.update(qe.UpdateOperation.upsert_points(points))
            self._since_optimize += len(points)
            if self._since_optimize >= self.optimize_every:
                self._shard.optimize()
                self._since_optimize = 0

    def optimize(self) -> None:
        with self._lock:
            self._shard.optimize()
            self._since_optimize = 0

    def nearest(
        self, vector: Any, scope: str, min_tier_rank: int, now: float, limit: int
    ) -> list[SemanticMatch]:
        qe = self._qe
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest([float(x) for x in vector], using=VECTOR),
            filter=self._filter(scope, min_tier_rank, now),
            with_payload=True,
            with_vector=True,
        )
        with self._lock:
            points = self._shard.query(request)
        return [SemanticMatch(p.score, _named(p.vector), dict(p.payload or {})) for p in points]

    def _delete(self, condition: Any) -> int:
        qe = self._qe
        with self._lock:
            n = self._shard.count(qe.CountRequest(exact=True, filter=condition))
            if n:
                self._shard.update(qe.UpdateOperation.delete_points_by_filter(condition))
        return int(n)

    def drop_prompt_version(self, prompt_version: str) -> int:
        qe = self._qe
        return self._delete(
            qe.Filter(
                must=[qe.FieldCondition(key="prompt_version", match=qe.MatchValue(prompt_version))]
            )
        )

    def purge_expired(self, now: float) -> int:
        qe = self._qe
        return self._delete(
            qe.Filter(must=[qe.FieldCondition(key="expires_at", range=qe.RangeFloat(lte=now))])
        )

    def count(self) -> int:
        with self._lock:
            return int(self._shard.count(self._qe.CountRequest(exact=True)))

    def close(self) -> None:
        with self._lock:
            self._shard.flush()
            self._shard.close()


def _named(vector: Any) -> Any:
    return vector.get(VECTOR) if isinstance(vector, dict) else vector


class ServerVectorStore:
    """A collection on a Qdrant server (or any qdrant-client location, e.g. ":memory:")."""

    def __init__(self, client: Any, collection: str, dim: int) -> None:
        from qdrant_client import models

        self._m = models
        self.client = client
        self.collection = collection
        if not client.collection_exists(collection):
            client.create_collection(
                collection,
                vectors_config={
                    VECTOR: models.VectorParams(size=dim, distance=models.Distance.COSINE)
                },
            )
            kinds = {
                "keyword": models.PayloadSchemaType.KEYWORD,
                "integer": models.PayloadSchemaType.INTEGER,
                "float": models.PayloadSchemaType.FLOAT,
            }
            for name, kind in INDEXED.items():
                client.create_payload_index(collection, name, kinds[kind])

    def upsert(self, entries: Sequence[SemanticEntry]) -> None:
        m = self._m
        self.client.upsert(
            self.collection,
            points=[
                m.PointStruct(
                    id=e.point_id, vector={VECTOR: [float(x) for x in e.vector]}, payload=_record(e)
                )
                for e in entries
            ],
            wait=True,
        )

    def nearest(
        self, vector: Any, scope: str, min_tier_rank: int, now: float, limit: int
    ) -> list[SemanticMatch]:
        m = self._m
        flt = m.Filter(
            must=[
                m.FieldCondition(key="scope", match=m.MatchValue(value=scope)),
                m.FieldCondition(key="tier_rank", range=m.Range(gte=min_tier_rank)),
                m.FieldCondition(key="expires_at", range=m.Range(gt=now)),
            ]
        )
        found = self.client.query_points(
            self.collection,
            query=[float(x) for x in vector],
            using=VECTOR,
            query_filter=flt,
            limit=limit,
            with_payload=True,
            with_vectors=True,
        )
        return [
            SemanticMatch(p.score, _named(p.vector), dict(p.payload or {})) for p in found.points
        ]

    def _delete(self, flt: Any) -> int:
        n = int(self.client.count(self.collection, count_filter=flt, exact=True).count)
        if n:
            self.client.delete(
                self.collection, points_selector=self._m.FilterSelector(filter=flt), wait=True
            )
        return n

    def drop_prompt_version(self, prompt_version: str) -> int:
        m = self._m
        return self._delete(
            m.Filter(
                must=[
                    m.FieldCondition(key="prompt_version", match=m.MatchValue(value=prompt_version))
                ]
            )
        )

    def purge_expired(self, now: float) -> int:
        m = self._m
        return self._delete(
            m.Filter(must=[m.FieldCondition(key="expires_at", range=m.Range(lte=now))])
        )

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def close(self) -> None:
        self.client.close()


def open_vector_store(settings: SemanticCacheConfig, dim: int) -> VectorStore:
    """The server when ``QDRANT_URL`` is set, else the embedded shard under ``vector_dir``."""
    if settings.qdrant_url:
        from qdrant_client import QdrantClient

        key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        client = QdrantClient(url=settings.qdrant_url, api_key=key)
        return ServerVectorStore(client, settings.qdrant_collection, dim)
    return EdgeVectorStore(settings.vector_dir, dim, settings.vector_optimize_every)
