"""Both Qdrant backends keep the vector store's contract: the embedded shard (qdrant-edge)
and the server adapter (qdrant-client, here on its in-process location); so does the
in-memory double of workers.testing."""

import uuid
import warnings

import numpy as np
import pytest

from workers.semantic_ports import SemanticEntry
from workers.stores.vectors import EdgeVectorStore, ServerVectorStore
from workers.testing import MemoryVectorStore

DIM = 16
NOW = 2_000_000_000.0


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def entry(i: int, scope: str = "s", pv: str = "pv-1", tier: int = 0, ttl: float = 60):
    return SemanticEntry(
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"e{i}")),
        unit(i),
        scope,
        pv,
        tier,
        NOW + ttl,
        {"question": f"q{i}", "answer": f"a{i}", "step_id": f"s{i}"},
    )


@pytest.fixture(params=["edge", "server", "memory"])
def store(request, tmp_path):
    if request.param == "memory":  # the double users test with (workers.testing)
        s = MemoryVectorStore()
    elif request.param == "edge":
        s = EdgeVectorStore(tmp_path / "shard", DIM, optimize_every=4)
    else:
        from qdrant_client import QdrantClient

        with warnings.catch_warnings():  # local mode ignores payload indexes, and says so
            warnings.simplefilter("ignore")
            s = ServerVectorStore(QdrantClient(location=":memory:"), "cache", DIM)
    yield s
    s.close()


def test_nearest_finds_the_closest_entry_of_the_scope_only(store):
    store.upsert([entry(1), entry(2), entry(3, scope="other")])
    found = store.nearest(unit(3), "s", 0, NOW, 3)
    assert {m.payload["step_id"] for m in found} == {"s1", "s2"}
    best = store.nearest(unit(1), "s", 0, NOW, 1)[0]
    assert best.payload["answer"] == "a1" and best.similarity == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(best.vector, unit(1), atol=1e-5)
    assert store.nearest(unit(1), "nobody", 0, NOW, 3) == []


def test_the_tier_floor_and_expiry_filter_entries(store):
    store.upsert([entry(1, tier=0), entry(2, tier=2), entry(3, ttl=-1)])
    assert [m.payload["step_id"] for m in store.nearest(unit(1), "s", 1, NOW, 3)] == ["s2"]
    assert "s3" not in {m.payload["step_id"] for m in store.nearest(unit(3), "s", 0, NOW, 3)}
    assert store.purge_expired(NOW) == 1 and store.count() == 2


def test_a_prompt_version_is_dropped_whole(store):
    store.upsert([entry(i, pv="pv-old" if i < 5 else "pv-new") for i in range(8)])
    assert store.drop_prompt_version("pv-old") == 5
    assert store.count() == 3 and store.drop_prompt_version("pv-old") == 0


def test_upserting_the_same_point_twice_keeps_one(store):
    store.upsert([entry(1)])
    store.upsert([entry(1)])
    assert store.count() == 1


def test_the_embedded_shard_persists_and_has_one_owner(tmp_path):
    first = EdgeVectorStore(tmp_path / "shard", DIM)
    first.upsert([entry(i) for i in range(10)])
    with pytest.raises(Exception):  # noqa: B017 - qdrant-edge raises a plain error
        EdgeVectorStore(tmp_path / "shard", DIM)
    first.close()
    reopened = EdgeVectorStore(tmp_path / "shard", DIM)
    assert reopened.count() == 10
    assert reopened.nearest(unit(4), "s", 0, NOW, 1)[0].payload["step_id"] == "s4"
    reopened.close()
