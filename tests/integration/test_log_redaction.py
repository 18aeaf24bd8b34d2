"""Celery's own error logs, in a real worker process, never print a secret or a prompt."""

import time
import uuid

import pytest

from producers.local.launcher import LocalFleet
from queues.topology import COMPRESS
from tests.integration.conftest import settings_for

pytestmark = pytest.mark.integration


def test_celerys_own_error_lines_withhold_bodies_and_secrets(redis_server):
    secret = f"sk-test-{uuid.uuid4().hex}"
    prompt = f"my card number is {uuid.uuid4().hex}"
    settings = settings_for(redis_server, db=4, openai_api_key=secret)
    with LocalFleet(settings, groups=["compress"]) as local:
        app = local.app
        # A message for a task nobody registered: Celery logs it with its body.
        app.send_task("tierfleet.no_such_task", args=[prompt, secret], queue=COMPRESS)
        log_file = local.log_dir / "compress.log"
        deadline = time.monotonic() + 30
        while "unregistered" not in log_file.read_text():
            assert time.monotonic() < deadline, "the worker never logged the message"
            time.sleep(0.1)
        text = log_file.read_text()
    assert "tierfleet.no_such_task" in text and "[withheld]" in text
    assert prompt not in text and secret not in text
