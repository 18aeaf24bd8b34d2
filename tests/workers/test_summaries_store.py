"""The summary store on a real Redis: one claim per exchange, summaries per session, a TTL."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from queues.keys import summaries as summaries_key
from workers.stores.summaries import RedisSummaries
from workers.testing import MemoryStores, MemorySummaries


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_one_claim_per_exchange_under_concurrency(redis_client, kind):
    # The in-memory double users test with (workers.testing) keeps the same contract.
    store = RedisSummaries(redis_client, ttl_s=3600) if kind == "redis" else memory_summaries()
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda _: store.claim("acme", "s-claims", "k1"), range(32)))
    assert won.count(True) == 1
    assert store.claim("acme", "s-claims", "k2")  # another exchange: its own claim
    assert store.claim("acme", "other-session", "k1")  # another session: its own claim


def memory_summaries() -> MemorySummaries:
    return MemorySummaries(MemoryStores())


def test_summaries_are_kept_per_session_and_expire(redis_client):
    store = RedisSummaries(redis_client, ttl_s=120)
    assert store.get("acme", "s-sum") == {}
    store.put("acme", "s-sum", "k1", "reservation AAA111: seat 12A")
    store.put("acme", "s-sum", "k2", "reservation BBB222: seat 14C")
    assert store.get("acme", "s-sum") == {
        "k1": "reservation AAA111: seat 12A",
        "k2": "reservation BBB222: seat 14C",
    }
    assert store.get("acme", "s-other") == {} and store.get("other", "s-sum") == {}
    assert 0 < redis_client.ttl(summaries_key("acme", "s-sum")) <= 120
