"""The lanes' starvation bound on a real Redis: a message that waited past its lane's bound
moves to the end of the lane above that is served next; younger ones and messages without
a send time stay."""

import json

from queues.topology import lane_ladders, stage_queues
from workers.lane_guard import LaneGuard

NOW = 1_000_000.0


def message(tag: str, sent_at: float | None) -> str:
    headers = {"tf_sent_at": sent_at} if sent_at is not None else {}
    return json.dumps({"body": tag, "headers": headers, "properties": {}})


def oldest_first(redis_client, queue: str) -> list[str]:
    """A kombu list as the worker takes it: from the right."""
    return [json.loads(m)["body"] for m in reversed(redis_client.lrange(queue, 0, -1))]


def test_a_starved_message_moves_up_one_lane_to_be_served_next(redis_client):
    interactive, standard, batch = stage_queues("tf.compress")
    # kombu pushes on the left: the first pushed is the oldest, taken first.
    for tag, age in (("old-1", 50.0), ("old-2", 40.0), ("young", 1.0)):
        redis_client.lpush(batch, message(tag, NOW - age))
    redis_client.lpush(standard, message("waiting", NOW - 5.0))
    guard = LaneGuard(
        redis_client, [interactive, standard, batch], {"batch": 30.0}, 1.0, lambda: NOW
    )
    assert guard.sweep() == 2
    # Served next, oldest first, ahead of what waited in the lane above.
    assert oldest_first(redis_client, standard) == ["old-1", "old-2", "waiting"]
    assert oldest_first(redis_client, batch) == ["young"]
    assert guard.sweep() == 0  # nothing else has waited that long


def test_a_message_without_a_send_time_is_left_in_its_lane(redis_client):
    interactive, standard, batch = stage_queues("tf.classify")
    redis_client.lpush(batch, message("legacy", None))
    guard = LaneGuard(
        redis_client, [interactive, standard, batch], {"batch": 0.0}, 1.0, lambda: NOW
    )
    assert guard.sweep() == 0 and oldest_first(redis_client, batch) == ["legacy"]


def test_the_ladders_follow_the_lanes_a_worker_drains():
    ladders = lane_ladders([*stage_queues("tf.ingress"), "tf.infer.cheap.interactive"])
    assert [(lo, hi, lane.value) for lo, hi, lane in ladders] == [
        ("tf.ingress", "tf.ingress.interactive", "standard"),
        ("tf.ingress.batch", "tf.ingress", "batch"),
    ]  # the cheap tier's lanes are not all drained here: no ladder for them
