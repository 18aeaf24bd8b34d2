"""structlog setup: JSON lines with the step's ids bound on every line of a stage's work."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from queues.messages import Envelope


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer()
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
