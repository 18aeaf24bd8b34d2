"""The fleet-wide provider gate on a real Redis: slots shared by every caller, expiry of a
dead holder's slot, and the circuit breaker."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from queues import keys
from workers.errors import GateClosed
from workers.stores.provider_gate import RedisProviderGate


def test_slots_are_held_to_the_limit_across_callers(redis_client):
    # Two gates: as two worker processes would hold them.
    gates = [RedisProviderGate(redis_client, {"openai": 3}, wait_s=10) for _ in range(2)]
    lock, in_flight, most = threading.Lock(), [0], [0]

    def call(i: int) -> None:
        with gates[i % 2].slot("openai", "gpt-4o-mini"):
            with lock:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
            time.sleep(0.02)
            with lock:
                in_flight[0] -= 1

    with ThreadPoolExecutor(12) as pool:
        list(pool.map(call, range(36)))
    assert most[0] == 3
    assert redis_client.zcard(keys.gate_slots("openai")) == 0


def test_a_model_limit_and_a_full_gate_that_gives_up(redis_client):
    gate = RedisProviderGate(redis_client, {}, {"gpt-4o": 1}, wait_s=0.1)
    with gate.slot("openai", "gpt-4o"):
        with (
            pytest.raises(GateClosed, match="fleet-wide limit") as closed,
            gate.slot("openai", "gpt-4o"),
        ):
            pass
        assert closed.value.retry_after_s == 1.0
        with gate.slot("openai", "gpt-4o-mini"):  # another model: no limit
            pass


def test_a_dead_holders_slot_expires(redis_client):
    now = [1000.0]
    gate = RedisProviderGate(
        redis_client, {"openai": 1}, slot_ttl_s=5, wait_s=0, clock=lambda: now[0]
    )
    held = gate.slot("openai")
    held.__enter__()  # a worker killed inside its call never releases it
    with pytest.raises(GateClosed), gate.slot("openai"):
        pass
    now[0] += 6
    with gate.slot("openai"):
        pass


def test_the_breaker_opens_after_failures_in_a_row_and_closes_after_its_cooldown(redis_client):
    now = [1000.0]
    gate = RedisProviderGate(redis_client, failures=3, cooldown_s=30, clock=lambda: now[0])
    gate.failed("anthropic")
    gate.failed("anthropic")
    gate.succeeded("anthropic")  # a success in between: the count starts again
    for _ in range(3):
        gate.check_circuit("anthropic")
        gate.failed("anthropic")
    with pytest.raises(GateClosed, match="circuit open") as opened, gate.slot("anthropic"):
        pass
    assert opened.value.retry_after_s == pytest.approx(30)
    gate.check_circuit("openai")  # per provider
    now[0] += 31
    with gate.slot("anthropic"):
        pass
