"""Redis stays bounded under the fleet: every key family has a TTL or a cap, and what the
ledger stream and tf.dead let go of past their caps is in the archive first."""

import json
import uuid

import pytest

from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from queues import keys
from queues.messages import StepStatus
from queues.topology import INGRESS, TASK_NAMES, Stage
from tests.integration.conftest import settings_for, unbounded_keys
from tests.integration.test_step_path import make_step
from tests.integration.test_summaries import wait_for
from tests.unit.test_compression import long_session

pytestmark = pytest.mark.integration


def test_every_key_has_a_ttl_or_a_cap_and_nothing_billed_is_trimmed_unseen(redis_server, tmp_path):
    settings = settings_for(
        redis_server,
        db=8,
        archive_dir=tmp_path / "archive",
        ledger_keep_entries=100,
        dead_keep_letters=10,
        shadow_fraction=0.5,
        summarize_dropped=True,
        history_budget_tokens=60,
        provider_limits={"simulated": 64},
        session_budget_usd=5.0,
        agent_budget_usd=50.0,
        tenant_budget_usd=500.0,
    )
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local = LocalFleet(settings).start(own_redis=False)
        try:
            long = [m.model_dump(exclude_none=True) for m in long_session()]
            steps = [make_step(session_id=f"b-{i % 7}") for i in range(140)]
            steps += [make_step(session_id="b-long", messages=long)]
            steps += [make_step(messages=steps[0].messages)]  # an exact-cache hit
            results = fleet.wait(fleet.submit_many(steps), timeout=180)
            assert all(r.status is StepStatus.ok for r in results), {r.reason for r in results}
            for i in range(25):  # each reaches a worker and is dead-lettered
                fleet.app.send_task(
                    TASK_NAMES[Stage.cache],
                    queue=INGRESS,
                    ignore_result=True,
                    args=[json.dumps({"step": {"step_id": f"bad-{i}", "tenant": "acme"}})],
                )
            bad = [fleet.app.AsyncResult(keys.result_id("acme", f"bad-{i}")) for i in range(25)]
            assert all(r.status is StepStatus.dead_lettered for r in fleet.wait(bad, timeout=60))
            wait_for(lambda: len(fleet.dead_letters()) + len(fleet.archived_dead_letters()) >= 25)
        finally:
            local.stop()

        assert unbounded_keys(fleet) == []
        # The streams and tf.dead hold no more than their caps (plus a tenth's headroom) ...
        assert int(fleet.redis.xlen(settings.ledger_stream)) <= 110
        assert len(fleet.dead_letters()) <= 11
        # ... and every step, summary and dead letter is still on the record, once.
        ledger = fleet.ledger()
        ids = [e.step_id for e in ledger]
        assert len(ids) == len(set(ids))
        assert {s.step_id for s in steps} <= set(ids)
        assert any(e.task_kind == "summarize" for e in ledger)
        dead = [r.step_id for r in fleet.archived_dead_letters()]
        dead += [d.record.step_id for d in fleet.dead_letters()]
        assert sorted(dead) == sorted(f"bad-{i}" for i in range(25))
        assert (tmp_path / "archive" / "tf_ledger").is_dir()


def test_a_session_budget_key_expires_with_its_session(fleet):
    session = f"ttl-{uuid.uuid4().hex[:8]}"
    fleet.set_session_budget("acme", session, 1.0)
    [result] = fleet.wait([fleet.submit(make_step(session_id=session))], timeout=60)
    assert result.status is StepStatus.ok
    assert int(fleet.redis.ttl(keys.session_budget("acme", session))) > 0
