import email.utils
import time

import pytest

from workers.errors import PermanentError, TransientError
from workers.logs import RedactingRenderer, redact
from workers.providers.calls import error_for_status, retry_after_s


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_and_milliseconds(headers, expected):
    assert retry_after_s(headers) == expected


def test_retry_after_reads_an_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after_s({"retry-after": when}) or 0) <= 31


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, TransientError), (529, TransientError), (503, TransientError), (400, PermanentError)],
)
def test_statuses_map_to_transient_or_permanent(status, kind):
    error = error_for_status("openai", status, "nope", retry_after=2.0)
    assert isinstance(error, kind) and f"{status}: nope" in str(error)


def test_secrets_are_redacted_from_rendered_log_lines():
    render = RedactingRenderer(lambda _l, _m, event: str(event), ["sk-secret-123"])
    line = render(None, "info", {"error": "Incorrect API key provided: sk-secret-123"})
    assert "sk-secret-123" not in line and "[redacted]" in line
    assert redact("key sk-secret-123!", ["sk-secret-123", ""]) == "key [redacted]!"
