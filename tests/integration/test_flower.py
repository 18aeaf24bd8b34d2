"""Flower, as installed by default, beside a real fleet: its own API lists every stage of a
step, the micro-batched inference task included, behind its login, and its arguments are
the step's names, never its prompt."""

import base64
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

from queues.topology import TASK_NAMES, Stage
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration

LOGIN = "operator:flower-test-password"


def get(url: str, login: str | None = LOGIN) -> bytes:
    request = urllib.request.Request(url)
    if login:
        request.add_header("Authorization", "Basic " + base64.b64encode(login.encode()).decode())
    with urllib.request.urlopen(request, timeout=10) as reply:
        return reply.read()


@pytest.fixture(scope="module")
def flower(local_fleet):
    url = local_fleet.start_flower(LOGIN)
    yield url
    local_fleet.stop_group("flower")


def test_flower_lists_a_steps_inference_task_with_its_state(flower, fleet):
    time.sleep(2.0)  # Flower's event consumer is up before the step is sent
    question = f"Flower question {uuid.uuid4().hex}"
    step = make_step(messages=[{"role": "user", "content": question}])
    result = fleet.wait([fleet.submit(step)], timeout=60)[0]
    assert result.status == "ok"

    infer = TASK_NAMES[Stage.infer]
    deadline = time.monotonic() + 20
    mine: dict = {}
    while time.monotonic() < deadline:
        tasks = json.loads(get(f"{flower}/api/tasks?limit=1000"))
        mine = {tid: t for tid, t in tasks.items() if step.step_id in (t.get("args") or "")}
        inference = [t for t in mine.values() if t["name"] == infer]
        if inference and inference[0]["state"] == "SUCCESS":
            break
        time.sleep(0.5)
    names = {t["name"] for t in mine.values()}
    assert infer in names, f"Flower saw only {sorted(names)}"
    assert {TASK_NAMES[Stage.cache], TASK_NAMES[Stage.finalize]} <= names
    assert [t["state"] for t in mine.values() if t["name"] == infer] == ["SUCCESS"]
    for task in mine.values():  # the step's names only: no prompt, no key
        assert question not in json.dumps(task)
        assert task["args"].startswith("<step acme/")


def test_flower_asks_for_its_login_and_exports_prometheus_metrics(flower):
    with pytest.raises(urllib.error.HTTPError) as refused:
        get(f"{flower}/api/tasks", login=None)
    assert refused.value.code == 401
    metrics = get(f"{flower}/metrics").decode()
    assert "flower_events_total" in metrics
