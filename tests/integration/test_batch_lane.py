"""The batch lane through real workers and Celery beat against the provider test server: 200
steps answered through OpenAI batches and Anthropic message batches at half price, with the
poller and beat killed and restarted while the jobs are out, and expired items resubmitted."""

import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from producers.cli.main import app
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.report import by_model
from queues.messages import StepStatus
from queues.topology import worker_groups
from tests.integration.conftest import settings_for, unbounded_keys
from tests.integration.test_metrics import scrape, total
from tests.provider_handle import ServerHandle

pytestmark = pytest.mark.integration

TABLE = Path(__file__).parents[2] / "policies" / "tables" / "providers.toml"
STEPS = 200


def wait_until(check, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_200_batch_lane_steps_survive_a_poller_and_beat_restart(
    redis_server, provider_server: ServerHandle, tmp_path
):
    provider_server.post("/_reset", {})
    provider_server.post("/_config", {"batch_delay_s": 3.0})
    # Three items expire in their first batch: they must come back through the lane.
    provider_server.faults({"contains": "EXPIRES", "expire": True, "times": 3})
    settings = settings_for(
        redis_server,
        db=4,
        tier_table=TABLE,
        **provider_server.settings_fields("sk-batch-test"),
        batch_job_max_steps=60,
        batch_job_wait_s=0.5,
        batch_poll_interval_s=0.5,
        batch_poll_lock_s=3.0,
        # What the killed poller held comes back this long after its last lease stamp (live
        # workers keep theirs), well inside the wait below.
        visibility_timeout_s=10,
        unacked_restore_interval_s=2,
    )
    local = LocalFleet(settings, log_dir=tmp_path)
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local.start(own_redis=False)
        try:
            steps = [
                {
                    "tenant": "acme",
                    "agent": "nightly-summaries",
                    "session_id": f"night-{i % 10}",
                    "lane": "batch",
                    "task_kind": "plan" if i % 2 else "summarize",  # anthropic / openai
                    "messages": [
                        {"role": "system", "content": "Summarise the ticket in one line."},
                        {
                            "role": "user",
                            "content": f"ticket {uuid.uuid4().hex[:8]}"
                            + (" EXPIRES" if i in (3, 4, 5) else ""),
                        },
                    ],
                }
                for i in range(STEPS)
            ]
            handles = fleet.submit_many(steps)

            # The jobs are out at the providers: kill the poller and beat, then restart them.
            stats = provider_server.stats
            wait_until(
                lambda: stats().get("openai.batches", 0) and stats().get("anthropic.batches", 0),
                "both providers' batch jobs",
            )
            # What an operator sees of them: `tierfleet batch` and the batch group's metrics.
            env = {"TIERFLEET_BROKER_URL": settings.broker_url, "TIERFLEET_TIER_TABLE": str(TABLE)}
            listed = CliRunner().invoke(app, ["batch"], env=env)
            assert listed.exit_code == 0 and "submitted" in listed.output, listed.output
            metrics = scrape(local.metrics_urls()["batch"])
            assert total(metrics, "tierfleet_batch_jobs", state="submitted") >= 1
            local.stop_group("batch", kill=True)
            local.stop_group("beat", kill=True)
            time.sleep(1.0)
            [batch_group] = [g for g in worker_groups([], 1) if g.name == "batch"]
            local.start_groups([batch_group])
            local.start_beat()

            results = fleet.wait(handles, timeout=120)
        finally:
            local.stop()
        ledger = fleet.ledger()
        assert unbounded_keys(fleet) == []  # the batch lane's keys expire or are capped

    assert Counter(r.status for r in results) == {StepStatus.ok: STEPS}
    assert {r.model for r in results} == {"gpt-4o-mini", "claude-haiku-4-5"}
    per_step = Counter(e.step_id for e in ledger)
    assert len(per_step) == STEPS and set(per_step.values()) == {1}  # each counted once
    calls = [c for e in ledger for c in e.calls]
    assert all(c.batch for c in calls) and len(calls) == STEPS  # expired tries cost nothing
    assert sum(r.decisions[-1].what == "accept" for r in results) == STEPS
    retried = [r for r in results if any(d.what == "retry" for d in r.decisions)]
    assert len(retried) == 3
    assert all(any("expired" in d.why for d in r.decisions) for r in retried)

    bill = provider_server.bill()["models"]
    ours = by_model(ledger)
    for model, line in bill.items():
        assert line["batch_calls"] == line["calls"] == ours[model]["calls"]
        assert ours[model]["cost_usd"] == pytest.approx(line["usd"], rel=1e-3)
