"""The lease keeper on a real Redis, and the delivery limit at the inference stage."""

import time

from queues.messages import StepStatus
from workers.infer import handle_batch
from workers.lease import LeaseKeeper
from workers.stores.redis_stores import RedisDeliveries
from workers.testing import envelope, infer_hops, make_runtime


def test_the_keeper_restamps_what_its_worker_holds_and_never_revives_an_acked_message(
    redis_client,
):
    index = "test:unacked_index"
    redis_client.delete(index)
    redis_client.zadd(index, {"held": 100.0, "other-workers": 100.0})
    held = ["held", "acked-meanwhile"]  # the second was acknowledged: gone from the index
    keeper = LeaseKeeper(
        lambda: held, redis_client, every_s=1, index_key=index, clock=lambda: 500.0
    )
    assert keeper.stamp() == 1
    assert redis_client.zscore(index, "held") == 500.0
    assert redis_client.zscore(index, "other-workers") == 100.0  # not ours: left to expire
    assert redis_client.zscore(index, "acked-meanwhile") is None


def test_the_keeper_runs_until_stopped(redis_client):
    index = "test:unacked_index-2"
    redis_client.zadd(index, {"held": 1.0})
    keeper = LeaseKeeper(lambda: ["held"], redis_client, every_s=0.05, index_key=index).start()
    try:
        deadline = time.monotonic() + 5
        while float(redis_client.zscore(index, "held") or 0) < 2.0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        keeper.stop()


def test_redeliveries_are_counted_per_message(redis_client):
    deliveries = RedisDeliveries(redis_client)
    assert deliveries.count("m1", redelivered=False) == 1
    assert [deliveries.count("m1", redelivered=True) for _ in range(2)] == [2, 3]
    assert 0 < int(redis_client.ttl("tf:deliveries:m1")) <= RedisDeliveries.TTL_S


def test_a_message_delivered_past_the_limit_is_dead_lettered_without_a_call():
    rt, bus, _ = make_runtime(max_deliveries=2)
    envs = [envelope(step_id="fine", tier="cheap"), envelope(step_id="poison", tier="cheap")]
    handle_batch(infer_hops(*envs), rt, deliveries=[2, 3])
    outcomes = {e.step.step_id: o for e, o in bus.finalized}
    assert outcomes["fine"].status is StepStatus.ok
    assert outcomes["poison"].status is StepStatus.dead_lettered
    assert "delivered 3 times without finishing" in outcomes["poison"].reason
