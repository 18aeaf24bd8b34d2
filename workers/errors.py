"""The short error hierarchy: Transient is retried with backoff, Permanent is dead-lettered,
and ``as_fleet_error`` says which of the two any other exception is."""

from __future__ import annotations

import kombu.exceptions
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


# Redis answers that pass: a full Redis (noeviction refuses the write: OOM), a replica
# promoted (READONLY), a cluster slot moving or down, a long script (BUSY). Any other error
# reply (WRONGTYPE, a script error) will be the same next time. (One still loading its AOF
# raises BusyLoadingError, a ConnectionError, already transient.)
TRANSIENT_REDIS_REPLIES: tuple[type[Exception], ...] = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
)


def as_fleet_error(exc: BaseException) -> FleetError:
    """Any exception as Transient or Permanent: the one mapping every failure path uses.
    Unknown exceptions (RecursionError from a deep schema, UnicodeEncodeError from a lone
    surrogate, OverflowError, a bug) are permanent: retrying the same step repeats them."""
    if isinstance(exc, FleetError):
        return exc
    if isinstance(exc, TRANSIENT):
        return TransientError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, redis.exceptions.ResponseError):
        if isinstance(exc, TRANSIENT_REDIS_REPLIES) or str(exc).startswith("BUSY"):
            return TransientError(f"Redis: {type(exc).__name__}: {exc}")
        return PermanentError(f"Redis: {exc}")
    if isinstance(exc, kombu.exceptions.OperationalError | ConnectionError):
        return TransientError(f"broker: {type(exc).__name__}: {exc}")
    return PermanentError(f"internal error: {type(exc).__name__}: {exc}")
