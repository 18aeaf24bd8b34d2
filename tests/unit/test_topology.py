from queues.bus import CeleryBus
from queues.messages import Outcome, StepStatus
from queues.step import Lane
from queues.topology import (
    DEAD,
    INGRESS,
    LANE_PRIORITY,
    NOOP,
    Stage,
    declare_queues,
    infer_queue,
    queue_for,
    queue_names,
    worker_groups,
)
from workers.testing import TEST_SEALER, envelope


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
    assert args[:4] == ["celery", "-A", "workers.app", "worker"]
    # Every stage has lanes: drained interactive first, its own name for standard.
    assert args[args.index("-Q") + 1] == "tf.ingress.interactive,tf.ingress,tf.ingress.batch"
    assert DEAD not in {q for g in groups.values() for q in g.queues}  # parked, never drained


def test_a_tier_that_sizes_its_own_micro_batches_is_prefetched_to_that_size():
    from policies.tables import TABLES
    from policies.tiers import load_tier_table

    table = load_tier_table(TABLES / "local_gpu.toml")  # its cheap tier: batches of 32
    groups = {g.name: g for g in worker_groups(table.names, 16, tier_flush=table.flush_sizes)}
    assert groups["infer-cheap"].prefetch_multiplier == 32
    assert groups["infer-mid"].prefetch_multiplier == 16


def test_stage_addressing():
    assert queue_for(Stage.cache) == INGRESS
    assert (
        queue_for(Stage.infer, "mid", "batch")
        == infer_queue("mid", "batch")
        == "tf.infer.mid.batch"
    )


def test_on_rabbitmq_every_stage_queue_orders_by_lane_and_every_message_carries_it():
    declared = {q.name: q for q in declare_queues(["cheap"], by_priority=True)}
    assert {n for n, q in declared.items() if q.max_priority == 9} == set(declared) - {NOOP}
    assert all(q.max_priority is None for q in declare_queues(["cheap"]))  # Redis: no priority

    sent: list[dict] = []

    class App:  # records what would be published
        def send_task(self, name, **options):
            sent.append(options)

    env = envelope(tier="cheap", lane="interactive")
    bus = CeleryBus(App(), TEST_SEALER, lanes_by_priority=True)  # type: ignore[arg-type]
    bus.submit(env.step)
    bus.send(Stage.compress, env)
    bus.send(Stage.infer, env)
    bus.finalize(env, Outcome(status=StepStatus.ok, answer="a"))
    assert [o["priority"] for o in sent] == [LANE_PRIORITY[Lane.interactive]] * 4
    sent.clear()
    CeleryBus(App(), TEST_SEALER).send(Stage.infer, env)  # type: ignore[arg-type]
    assert "priority" not in sent[0]
