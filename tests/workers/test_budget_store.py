"""The Lua budget script on a real Redis, under concurrent reservations."""

from concurrent.futures import ThreadPoolExecutor

from tests.doubles import envelope
from workers.stores.budget import RedisBudgetStore


def test_reserve_settle_release(redis_client):
    store = RedisBudgetStore(redis_client)
    env = envelope()
    store.set_limit("acme", "s1", 1e-6)  # 1000 nano-dollars
    assert store.reserve(env, "r1", 600) is not None
    assert store.reserve(env, "r2", 600) is None  # 600 + 600 > 1000
    assert store.reserve(env, "r1", 600) is not None  # a redelivery keeps its reservation
    store.settle(env, "r1", 100)
    store.settle(env, "r1", 100)  # settling twice changes nothing
    state = store.state("acme", "s1")
    assert (state.spent_nano, state.reserved_nano) == (100, 0)
    store.reserve(env, f"{env.step.step_id}:0:0", 300)
    assert store.release_step(env) == 300
    assert store.state("acme", "s1").reserved_nano == 0


def test_default_limit_and_unlimited(redis_client):
    env = envelope(session_id="s2")
    assert RedisBudgetStore(redis_client, default_limit_usd=None).reserve(env, "a", 10**15)
    limited = RedisBudgetStore(redis_client, default_limit_usd=1e-6)
    assert limited.reserve(envelope(session_id="s3"), "a", 1001) is None


def test_concurrent_reservations_never_exceed_the_hard_limit(redis_client):
    store = RedisBudgetStore(redis_client)
    store.set_limit("acme", "s1", 1e-5)  # 10,000 nano-dollars
    env = envelope()

    def attempt(i: int) -> bool:
        admitted = store.reserve(env, f"r{i}", 700) is not None
        if admitted:
            store.settle(env, f"r{i}", 650)
        return admitted

    with ThreadPoolExecutor(16) as pool:
        admitted = sum(pool.map(attempt, range(200)))
    state = store.state("acme", "s1")
    assert state.spent_nano <= 10_000 and state.reserved_nano == 0
    assert admitted == state.spent_nano // 650 and admitted >= 10_000 // 700
