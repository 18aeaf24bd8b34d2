"""The short error hierarchy: Transient is retried with backoff, Permanent is dead-lettered."""

from __future__ import annotations

import redis


class FleetError(Exception):
    """Base of tierfleet's own errors."""


class TransientError(FleetError):
    """Worth retrying: a timeout, a 429, a 5xx, a dropped connection."""


class PermanentError(FleetError):
    """Retrying cannot help: a malformed message, a 4xx, an unknown model. Dead-letter it."""


class MalformedMessage(PermanentError):
    """A message that does not parse as an envelope."""


# What a stage retries with backoff: our own transient errors and a Redis that blinked.
TRANSIENT: tuple[type[Exception], ...] = (
    TransientError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
