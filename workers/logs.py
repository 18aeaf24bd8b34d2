"""structlog setup: JSON lines with the step's ids bound on every line of a stage's work."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import structlog

from queues.messages import Envelope

REDACTED = "[redacted]"


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret value replaced, for log lines and error messages."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class RedactingRenderer:
    """Renders a log line, then removes secrets from it, whatever field carried them."""

    def __init__(self, renderer: Any, secrets: Sequence[str]) -> None:
        self.renderer = renderer
        self.secrets = list(secrets)

    def __call__(self, logger: Any, method: str, event: Any) -> str:
        return redact(str(self.renderer(logger, method, event)), self.secrets)


# Where Celery's own log lines dump a message's body or arguments: the rest of such a line
# is withheld (it is a prompt, maybe with secrets in it).
BODY_MARKERS = ("The full contents of the message body was:", "body:", "args=", "'args':")
MAX_LOG_CHARS = 1000


def withhold_bodies(text: str) -> str:
    for marker in BODY_MARKERS:
        at = text.find(marker)
        if at >= 0:
            text = text[: at + len(marker)] + " [withheld]"
    return text


class RedactingFilter(logging.Filter):
    """For Celery's own log lines (and any other through the same handlers): message bodies
    withheld, secrets replaced, the line cut to MAX_LOG_CHARS, tracebacks redacted too."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        text = redact(withhold_bodies(record.getMessage()), self.secrets)
        record.msg, record.args = text[:MAX_LOG_CHARS], None
        if record.exc_info and not record.exc_text:
            trace = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(withhold_bodies(trace), self.secrets)[-4 * MAX_LOG_CHARS :]
        return True


def redact_handlers(logger: logging.Logger, secrets: Sequence[str]) -> None:
    """Put the redacting filter on every handler of ``logger`` (once)."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(secrets))


def configure_logging(
    level: str = "INFO", json_lines: bool = True, secrets: Sequence[str] = ()
) -> None:
    renderer = RedactingRenderer(
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(),
        secrets,
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


@contextmanager
def bound_step(env: Envelope, stage: str) -> Iterator[None]:
    step = env.step
    with structlog.contextvars.bound_contextvars(
        step_id=step.step_id,
        session=step.session_id,
        tenant=step.tenant,
        agent=step.agent,
        stage=stage,
    ):
        yield
