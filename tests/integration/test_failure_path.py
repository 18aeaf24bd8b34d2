"""One failure path through real workers: a Redis that refuses writes (OOM under
noeviction) is a transient error at every stage that writes, retried with a countdown
counted in the envelope; the step is answered once Redis has room, or dead-lettered with the
reason when it never does. Nothing vanishes."""

import json
import time
from collections import Counter

import pytest
import redis

from producers.fleet import Fleet, InvalidStep
from producers.local.launcher import LocalFleet
from producers.local.services import EmbeddedRedis
from queues import keys
from queues.messages import StepStatus
from queues.topology import COMPRESS, FINALIZE, INGRESS, TASK_NAMES, Stage, infer_queue
from tests.integration.conftest import settings_for
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration


@pytest.fixture
def store_redis():
    server = EmbeddedRedis().start()
    yield server
    server.stop()


def refuse_writes(client: redis.Redis) -> None:
    client.config_set("maxmemory", "1")  # every write is over the cap: OOM


def test_a_full_store_redis_is_retried_then_answered_or_dead_lettered(redis_server, store_redis):
    settings = settings_for(
        redis_server,
        db=10,
        redis_url=store_redis.url,
        retry_backoff_s=0.4,
        max_transient_retries=4,
    )
    store = redis.Redis(port=store_redis.port)
    local = LocalFleet(
        settings, groups=["cache", "compress", "classify", "infer-cheap", "finalize"]
    )
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()  # the store
        redis.Redis.from_url(settings.broker_url).flushdb()
        local.start(own_redis=False)
        try:
            # Room comes back within the retries: every step is answered, once.
            refuse_writes(store)
            steps = [make_step(labels={"difficulty": 0.0}) for _ in range(6)]
            handles = fleet.submit_many(steps)
            time.sleep(1.5)
            store.config_set("maxmemory", "0")
            results = fleet.wait(handles, timeout=90)
            assert [r.status for r in results] == [StepStatus.ok] * 6, [r.reason for r in results]
            retried = [d for r in results for d in r.decisions if d.what == "retry"]
            assert retried and all("OutOfMemoryError" in d.why for d in retried)
            counts = Counter(e.step_id for e in fleet.ledger())
            assert all(counts[s.step_id] == 1 for s in steps)

            # It never comes back: the steps end dead-lettered with the reason, none vanish.
            refuse_writes(store)
            stuck = [make_step(labels={"difficulty": 0.0}) for _ in range(3)]
            results = fleet.wait(fleet.submit_many(stuck), timeout=120)
            store.config_set("maxmemory", "0")
        finally:
            local.stop()
    assert [r.status for r in results] == [StepStatus.dead_lettered] * 3
    for r in results:  # the ledger is on the full Redis too: finalize says so, and why
        assert r.reason.startswith("finalize failed, retries exhausted (4)"), r.reason
        assert "dead_lettered: retries exhausted (4)" in r.reason and "OutOfMemory" in r.reason


def test_unreadable_messages_on_every_queue_are_dead_lettered_and_the_workers_stay_up(fleet):
    step = {"tenant": "acme", "agent": "support", "session_id": "s-fuzz"}
    # A lone surrogate is refused at submit, with the reason ...
    with pytest.raises(InvalidStep, match="cannot be sent as JSON"):
        fleet.submit({**step, "messages": [{"role": "user", "content": "hi \ud800"}]})
    # ... and published around submit, it reaches a worker and is dead-lettered, answered.
    surrogate = (
        '{"step": {"tenant": "acme", "agent": "support", "session_id": "s", "step_id": "sur-1", '
        '"messages": [{"role": "user", "content": "hi \\ud800"}]}}'
    )
    deep = json.dumps({"step": {**step, "step_id": "deep-1"}})[:-2] + ', "x": ' + "[" * 1000
    sends = [
        (TASK_NAMES[Stage.cache], INGRESS, [surrogate]),
        (TASK_NAMES[Stage.cache], INGRESS, [deep + "]" * 1000 + "}}"]),
        (TASK_NAMES[Stage.cache], INGRESS, [json.dumps({"step": {**step, "step_id": "ar-1"}})] * 3),
        (TASK_NAMES[Stage.compress], COMPRESS, []),
        (TASK_NAMES[Stage.finalize], FINALIZE, ["a", "b"]),
        (TASK_NAMES[Stage.infer], infer_queue("cheap", "interactive"), ["x", "y", "z"]),
    ]
    before = len(fleet.dead_letters(10_000))
    for task, queue, args in sends:
        fleet.app.send_task(task, args=args, queue=queue, ignore_result=True)
    # Where the step's names can be read, its producer hears back. (Too deep to read at all,
    # the deep one cannot name its step: it is only dead-lettered.)
    answered = fleet.wait(
        [fleet.app.AsyncResult(keys.result_id("acme", s)) for s in ("sur-1", "ar-1")], timeout=60
    )
    assert [r.status for r in answered] == [StepStatus.dead_lettered] * 2
    assert "takes (envelope, seal)" in answered[1].reason
    deadline = time.monotonic() + 30
    while len(fleet.dead_letters(10_000)) < before + len(sends):
        assert time.monotonic() < deadline, "a message was neither answered nor dead-lettered"
        time.sleep(0.1)
    [ok] = fleet.wait([fleet.submit(make_step())], timeout=60)  # every worker is still up
    assert ok.status is StepStatus.ok
