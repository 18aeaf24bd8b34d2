"""The chaos run's inputs: its workload and its fuzz (the run itself is `tierfleet chaos`,
kept out of the suite; its scenarios at small sizes are the integration tests)."""

import json
import random

from producers.bench.chaos import ChaosPlan, fuzz_messages, workload
from queues.step import AgentStep
from workers.errors import MalformedMessage
from workers.opening import open_submission
from workers.testing import make_runtime


def test_the_workload_mixes_lanes_tenants_and_tight_sessions():
    steps = workload(ChaosPlan(steps=600))
    assert {s["lane"] for s in steps} == {"interactive", "standard", "batch"}
    assert {s["tenant"] for s in steps} == {"t0", "t1", "t2"}
    assert any(s["session_id"].startswith("tight") for s in steps)
    assert all(AgentStep.model_validate(s) for s in steps[:50])


def refused(args: list) -> bool:
    """Whether a stage refuses the message: the wrong arity, a seal it cannot have made (the
    sender has no key), or not a submission the ingress stage could take."""
    if len(args) != 1:
        return True
    try:
        open_submission(make_runtime()[0], args[0])
    except MalformedMessage:
        return True
    return False


def test_every_fuzz_message_is_bad_and_carries_its_marker():
    sent = list(fuzz_messages(140, ["cheap", "mid"], random.Random(3)))
    assert len({queue for _, queue, _ in sent}) >= 8  # every stage's and tier's queues
    for marker, _, args in sent:
        assert marker in json.dumps(args)[: 64 * 1024]  # where tf.dead keeps it
        assert refused(args), args[0][:200]


def test_on_rabbitmq_fuzz_goes_to_the_tier_queues_it_declares():
    queues = {q for _, q, _ in fuzz_messages(20, ["cheap"], random.Random(1), by_priority=True)}
    assert "tf.infer.cheap" in queues and not any(q.endswith(".interactive") for q in queues)
