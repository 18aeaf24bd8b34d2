"""A provider limit holds across the whole fleet: four inference worker processes, each free
to make eight calls at once, never have more than the fleet-wide limit in flight at the
provider (the provider test server counts them)."""

import uuid
from pathlib import Path

import pytest

from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from queues.messages import StepStatus
from queues.topology import WorkerGroup
from tests.integration.conftest import settings_for, unbounded_keys
from tests.provider_handle import ServerHandle

pytestmark = pytest.mark.integration
TABLE = Path(__file__).parents[2] / "policies" / "tables" / "providers.toml"
LIMIT = 3


def test_a_provider_limit_holds_across_four_worker_processes(
    redis_server, provider_server: ServerHandle, tmp_path
):
    provider_server.post("/_reset", {})
    provider_server.faults({"model": "gpt-4o-mini", "delay_s": 0.25, "times": -1})
    settings = settings_for(
        redis_server,
        db=5,
        tier_table=TABLE,
        **provider_server.settings_fields("sk-limits-test"),
        provider_limits={"openai": LIMIT},
        provider_concurrency=8,
        batch_flush_every=8,
    )
    groups = ["cache", "compress", "classify", "infer-cheap", "finalize"]
    local = LocalFleet(settings, groups=groups, log_dir=tmp_path)
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local.start(own_redis=False)
        try:
            cheap = next(g for g in local.groups() if g.name == "infer-cheap")
            local.start_groups(
                [
                    WorkerGroup(f"infer-cheap-{i}", cheap.queues, cheap.prefetch_multiplier)
                    for i in range(3)
                ]
            )
            steps = [
                {
                    "tenant": "acme",
                    "agent": "support",
                    "session_id": f"lim-{uuid.uuid4().hex[:6]}",
                    "messages": [{"role": "user", "content": f"Question {i} {uuid.uuid4().hex}"}],
                    "max_output_tokens": 32,
                }
                for i in range(32)
            ]
            results = fleet.wait(fleet.submit_many(steps), timeout=120)
        finally:
            local.stop()
        assert unbounded_keys(fleet) == []  # slots and breakers expire
    most = int(provider_server.stats().get("max_in_flight", 0))
    provider_server.post("/_reset", {})
    assert all(r.status is StepStatus.ok for r in results), {r.reason for r in results}
    assert results[0].model == "gpt-4o-mini"
    # Without the fleet-wide gate: up to 4 processes x 8 concurrent calls.
    assert 2 <= most <= LIMIT
