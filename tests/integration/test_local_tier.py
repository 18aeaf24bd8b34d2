"""The local tier through the real fleet: Redis, every worker group as its own process, the
cheap tier's worker running SmolLM2-135M on the CPU engine it loaded at start."""

from collections import Counter

import pytest

from policies.tables import TABLES
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from queues.messages import StepStatus
from tests.integration.conftest import settings_for

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = pytest.mark.integration

LOCAL = "local/smollm2-135m"


def test_steps_are_answered_by_the_local_model_in_one_micro_batch_and_priced_by_time(
    redis_server,
):
    settings = settings_for(
        redis_server,
        db=15,
        tier_table=TABLES / "local.toml",  # its cheap tier: micro-batches of 8, 2 s of wait
    )
    steps = [
        {
            "tenant": "t",
            "agent": "quiz",
            "session_id": f"local-{i}",
            "task_kind": "chat",
            "max_output_tokens": 16,
            "messages": [{"role": "user", "content": f"Say hello to guest number {i}."}],
        }
        for i in range(8)
    ]
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local = LocalFleet(settings).start(own_redis=False)
        try:
            results = fleet.wait(fleet.submit_many(steps), timeout=240)
        finally:
            local.stop()
        ledger = fleet.ledger()
        calls = [c for c in fleet.calls() if c["event"] == "answer" and c["model"] == LOCAL]
    assert all(r.status is StepStatus.ok for r in results), [r.reason for r in results]
    # Every step's first call went to the local model, and the eight shared one engine call
    # (the tier table's micro-batch size, not the settings' 16).
    assert len(calls) == 8 and len({c["try"] for c in calls}) == 1
    local_calls = [c for e in ledger for c in e.calls if c.model == LOCAL]
    assert len(local_calls) == 8
    assert all(c.engine_s > 0 and c.cost_usd > 0 for c in local_calls)
    assert all(c.cost_usd == pytest.approx(0.05 * c.engine_s / 3600) for c in local_calls)
    # Each waited for the batch to gather (the first for the others): the wait is recorded.
    assert all(0 < c.queue_wait_s < 120 for c in local_calls)
    answered_by = Counter(r.model for r in results)
    assert set(answered_by) <= {LOCAL, "sim/claude-3-5-haiku", "sim/gpt-4o"}
