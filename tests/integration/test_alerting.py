"""The fleet's own alerts, evaluated by a real finalize worker over the real ledger stream:
a synthetic latency spike fires the lane's alert, which clears once the spike has passed."""

import json

import pytest
import redis

from producers.local.launcher import LocalFleet
from queues import keys
from queues.records import LedgerEntry
from tests.integration.conftest import settings_for, wait_for
from workers.alerting import AlertStore

pytestmark = pytest.mark.integration


def test_a_latency_spike_fires_an_alert_that_clears(redis_server):
    settings = settings_for(
        redis_server,
        db=9,
        alert_interval_s=0.5,
        alert_window_s=3.0,
        alert_latency_p95_s={"standard": 2.0},
    )
    client = redis.Redis.from_url(settings.broker_url)
    client.flushdb()
    local = LocalFleet(settings, groups=["finalize"])
    local.start(own_redis=False)
    try:
        slow = [
            LedgerEntry(step_id=f"slow{i}", tenant="t", lane="standard", latency_ms=9_000.0)
            for i in range(20)
        ]
        for e in slow:  # as finalize writes them: one stream entry per step
            client.xadd(
                settings.ledger_stream, {k: json.dumps(v) for k, v in e.to_record().items()}
            )
        store = AlertStore(client)
        fired = wait_for(lambda: store.active().get("StepLatencyP95High:standard"))
        assert fired.value == pytest.approx(9.0) and fired.threshold == 2.0
        # Three seconds on, the spike is out of the window: the alert resolves by itself.
        wait_for(lambda: "StepLatencyP95High:standard" not in store.active(), timeout=20)
        states = [(e["rule"], e["state"]) for e in store.events()]
        assert states == [
            ("StepLatencyP95High", "firing"),
            ("StepLatencyP95High", "resolved"),
        ]
        assert client.exists(keys.ALERTS_STREAM)
    finally:
        local.stop()
        client.flushdb()
        client.close()
