"""The short error hierarchy: Transient is retried with backoff, Permanent is dead-lettered."""

from __future__ import annotations

import redis


class FleetError(Exception):
    """Base of tierfleet's own errors."""


class TransientError(FleetError):
    """Worth retrying: a timeout, a 429, a 5xx, a dropped connection."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s  # what the provider asked for (Retry-After)


class GateClosed(TransientError):
    """No call was made: the provider is at its fleet-wide limit or its circuit is open.
    Retried through the queue with a countdown, never inside the worker."""


class PermanentError(FleetError):
    """Retrying cannot help: a malformed message, a 4xx, an unknown model. Dead-letter it."""


class ProviderUnavailable(PermanentError):
    """A provider the tier table names cannot be used: its key or URL is not set."""


class MalformedMessage(PermanentError):
    """A message that does not parse as an envelope."""


class ForgedMessage(MalformedMessage):
    """A message to a stage without the fleet's seal (queues/seal.py): never acted on."""


# What a stage retries with backoff: our own transient errors and a Redis that blinked.
TRANSIENT: tuple[type[Exception], ...] = (
    TransientError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
