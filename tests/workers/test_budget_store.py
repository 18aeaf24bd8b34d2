"""The Lua budget script on a real Redis: every scope, dollars and tokens, under concurrency;
the in-memory double keeps the same reserve/settle/release contract."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from policies.budgets import economy_reason
from queues import keys
from workers.stores.budget import RedisBudgetStore, ScopeLimits
from workers.testing import MemoryBudgets, envelope


@pytest.fixture(params=["redis", "memory"])
def limited_store(request, redis_client):
    """A store with a hard session limit of 1000 nano-dollars: the Lua script on Redis, and
    the in-memory double users test with (workers.testing), held to the same contract."""
    if request.param == "memory":
        return MemoryBudgets(limit_nano=1000)
    store = RedisBudgetStore(redis_client)
    store.set_limits("session", "acme", "s1", ScopeLimits(hard_usd=1e-6))
    return store


def test_reserve_settle_release(limited_store):
    store = limited_store
    env = envelope()
    assert store.reserve(env, "r1", 600) is None
    assert store.reserve(env, "r2", 600) == "session"  # 600 + 600 > 1000
    assert store.reserve(env, "r1", 600) is None  # a redelivery keeps its reservation
    store.settle(env, "r1", 100, tokens=40)
    store.settle(env, "r1", 100, tokens=40)  # settling twice changes nothing
    state = store.state("acme", "s1")
    assert (state.spent_nano, state.reserved_nano, state.spent_tokens) == (100, 0, 40)
    store.reserve(env, keys.reservation("acme", env.step.step_id, 0, 0), 300, tokens=10)
    assert store.release_step(env) == 300
    assert store.state("acme", "s1").reserved_nano == 0
    assert store.state("acme", "s1").reserved_tokens == 0


def test_default_limits_and_unlimited(redis_client):
    env = envelope(session_id="s2")
    assert RedisBudgetStore(redis_client).reserve(env, "a", 10**15, 10**9) is None
    limited = RedisBudgetStore(redis_client, session=ScopeLimits(hard_usd=1e-6))
    assert limited.reserve(envelope(session_id="s3"), "a", 1001) == "session"
    by_tokens = RedisBudgetStore(redis_client, session=ScopeLimits(hard_tokens=500))
    assert by_tokens.reserve(envelope(session_id="s4"), "a", 1, tokens=501) == "session"
    assert by_tokens.reserve(envelope(session_id="s4"), "b", 1, tokens=500) is None


def test_an_agent_limit_holds_across_its_sessions(redis_client):
    store = RedisBudgetStore(redis_client)
    store.set_limits("agent", "acme", "support", ScopeLimits(hard_tokens=1000, soft_tokens=600))
    first = envelope(session_id="a1", agent="support")
    second = envelope(session_id="a2", agent="support")
    assert store.reserve(first, "r1", 5, tokens=700) is None
    # The second session has room of its own, but not the agent: refused, nothing held.
    assert store.reserve(second, "r2", 5, tokens=400) == "agent"
    assert store.state("acme", "a2").reserved_tokens == 0
    store.settle(first, "r1", 5, tokens=650)
    session, agent, tenant = store.states(second)
    assert (session.scope, agent.scope, tenant.scope) == ("session", "agent", "tenant")
    assert agent.spent_tokens == 650 and agent.reserved_tokens == 0
    assert economy_reason(store.states(second)) == "agent 650 tokens >= soft 600"
    assert store.reserve(second, "r3", 5, tokens=350) is None


def test_concurrent_reservations_never_exceed_the_hard_limit(redis_client):
    store = RedisBudgetStore(redis_client)
    store.set_limits("session", "acme", "s1", ScopeLimits(hard_usd=1e-5))  # 10,000 nano-dollars
    env = envelope()

    def attempt(i: int) -> bool:
        admitted = store.reserve(env, f"r{i}", 700, tokens=10) is None
        if admitted:
            store.settle(env, f"r{i}", 650, tokens=9)
        return admitted

    with ThreadPoolExecutor(16) as pool:
        admitted = sum(pool.map(attempt, range(200)))
    state = store.state("acme", "s1")
    assert state.spent_nano <= 10_000 and state.reserved_nano == 0
    assert admitted == state.spent_nano // 650 and admitted >= 10_000 // 700
    assert state.spent_tokens == 9 * admitted
