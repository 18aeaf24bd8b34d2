"""Task events from real workers: a micro-batched inference step is seen like any other
task (what Flower and other event consumers show), its arguments only the step's names."""

import threading
import time
import uuid

import pytest

from queues.topology import TASK_NAMES, Stage
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration


def test_micro_batched_inference_sends_received_started_and_succeeded(fleet):
    events: list[dict] = []
    receivers = []

    def capture() -> None:
        with fleet.app.connection_for_read() as connection:
            receiver = fleet.app.events.Receiver(connection, handlers={"*": events.append})
            receivers.append(receiver)
            receiver.capture(limit=None, timeout=None, wakeup=False)

    listening = threading.Thread(target=capture, daemon=True)
    listening.start()
    time.sleep(1.0)  # the receiver binds its queue before the steps are sent
    tag = uuid.uuid4().hex[:8]
    steps = [make_step(step_id=f"ev-{tag}-{i}") for i in range(4)]
    results = fleet.wait(fleet.submit_many(steps), timeout=60)
    assert all(r.status == "ok" for r in results)

    infer = TASK_NAMES[Stage.infer]

    def states() -> dict[str, set[str]]:
        names = {e["uuid"]: e.get("args", "") for e in events if e.get("name") == infer}
        seen: dict[str, set[str]] = {}
        for e in events:
            if e.get("uuid") in names and tag in names[e["uuid"]]:
                seen.setdefault(e["uuid"], set()).add(e["type"])
        return seen

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(states()) < len(steps):
        time.sleep(0.2)
    receivers[0].should_stop = True
    seen = states()
    assert len(seen) == len(steps)  # each step's inference task, one per step
    for types in seen.values():
        assert {"task-received", "task-started", "task-succeeded"} <= types
    shown = [e["args"] for e in events if e.get("name") == infer and tag in e.get("args", "")]
    assert all(a.startswith("<step acme/ev-") and "Question" not in a for a in shown)
