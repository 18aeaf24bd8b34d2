from queues.topology import (
    DEAD,
    INGRESS,
    Stage,
    infer_queue,
    queue_for,
    queue_names,
    worker_groups,
)


def test_one_queue_per_tier_and_lane():
    names = queue_names(["cheap", "mid", "frontier"])
    for tier in ("cheap", "mid", "frontier"):
        for lane in ("interactive", "standard", "batch"):
            assert f"tf.infer.{tier}.{lane}" in names
    assert {INGRESS, "tf.compress", "tf.classify"} <= set(names)
    assert DEAD not in names  # a list in the store, whatever the broker


def test_infer_workers_drain_lanes_in_strict_order_and_prefetch_a_batch():
    groups = {g.name: g for g in worker_groups(["cheap", "mid"], flush_every=16)}
    assert groups["infer-cheap"].queues == (
        "tf.infer.cheap.interactive",
        "tf.infer.cheap.standard",
        "tf.infer.cheap.batch",
    )
    assert groups["infer-cheap"].prefetch_multiplier == 16
    assert groups["cache"].prefetch_multiplier == 1
    args = groups["cache"].celery_args()
    assert args[:4] == ["celery", "-A", "workers.app", "worker"] and "tf.ingress" in args
    assert DEAD not in {q for g in groups.values() for q in g.queues}  # parked, never drained


def test_stage_addressing():
    assert queue_for(Stage.cache) == INGRESS
    assert (
        queue_for(Stage.infer, "mid", "batch")
        == infer_queue("mid", "batch")
        == "tf.infer.mid.batch"
    )
