"""Every paid call is on the bill, even one whose worker is killed while the provider
answers it: the call was noted before it was made, so it stays on the bill as unconfirmed at
its estimate, and the bill still matches what the provider charged."""

import time
import uuid
from pathlib import Path

import pytest

from producers.bill import summarize_bill
from producers.fleet import Fleet
from producers.report import unique_steps
from queues.messages import Envelope, StepStatus
from queues.topology import Stage
from tests.integration.conftest import sealed_bus, settings_for
from tests.integration.test_redelivery import cheap_workers, infer_fleet
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration

TABLE = Path(__file__).parents[2] / "policies" / "tables" / "providers.toml"


def test_a_call_cut_off_by_kill_9_stays_on_the_bill(redis_server, provider_server):
    provider_server.post("/_reset", {})
    provider_server.faults({"contains": "SLOW-CALL", "delay_s": 3.0, "times": 1})
    settings = settings_for(
        redis_server,
        db=12,
        tier_table=TABLE,
        **provider_server.settings_fields("sk-test-bill-after-kill"),
        visibility_timeout_s=3,
        unacked_restore_interval_s=1,
        batch_flush_every=1,
    )
    step = make_step(
        messages=[
            {"role": "system", "content": "You are an airline agent."},
            {"role": "user", "content": f"SLOW-CALL: where is my bag {uuid.uuid4().hex}?"},
        ]
    )
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local = infer_fleet(settings, ["infer-a"])
        try:
            sealed_bus(fleet).send_many(Stage.infer, [Envelope(step=step, tier="cheap")])
            deadline = time.monotonic() + 30
            while not provider_server.stats().get("in_flight"):  # the provider has the call
                assert time.monotonic() < deadline, "the call never reached the provider"
                time.sleep(0.02)
            local.stop_group("infer-a", kill=True)
            local.start_groups(cheap_workers(settings, ["infer-b"]))
            [result] = fleet.wait([fleet.result_handle(step)], timeout=60)
        finally:
            local.stop()
        time.sleep(1.0)  # the provider finishes the call its client died on, and bills it
        bill = summarize_bill(fleet.calls(), unique_steps(fleet.ledger()))
    assert result.status is StepStatus.ok
    provider = provider_server.bill()
    assert provider["models"]["gpt-4o-mini"]["calls"] == 2  # the cut-off call was billed
    assert bill["provider_calls"] == 1 and bill["unconfirmed_calls"] == 1
    assert bill["confirmed_usd"] < provider["total_usd"]  # the answered call alone falls short
    # The same prompt again: the estimate is what the answered call cost.
    assert bill["billed_usd"] == pytest.approx(provider["total_usd"], rel=1e-3)
