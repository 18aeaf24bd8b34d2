"""What every HTTP provider adapter shares: mapping SDK errors to Transient/Permanent,
retrying transient ones with tenacity (exponential backoff with full jitter, honouring
Retry-After), and a per-provider cap on concurrent calls."""

from __future__ import annotations

import email.utils
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any, TypeVar

import structlog
import tenacity
import tenacity.wait

from policies.retry import clamp_delay
from queues.settings import Settings
from workers.errors import GateClosed, PermanentError, TransientError
from workers.logs import redact
from workers.ports import Completion, CompletionRequest, ProviderGate

SDKS = ("openai", "anthropic")  # their error classes share names


def sdk_errors(*names: str) -> tuple[type[Exception], ...]:
    """The SDKs' error classes called ``names``, from the SDKs this process has loaded: an
    SDK that was never imported raised nothing (they are imported when a provider is built)."""
    loaded = [sys.modules[sdk] for sdk in SDKS if sdk in sys.modules]
    return tuple(getattr(module, name) for module in loaded for name in names)


def status_errors() -> tuple[type[Exception], ...]:
    return sdk_errors("APIStatusError")


def network_errors() -> tuple[type[Exception], ...]:
    return sdk_errors("APITimeoutError", "APIConnectionError")


RETRYABLE_STATUS = frozenset({429, 529})  # 529: Anthropic's "overloaded"
T = TypeVar("T")
log = structlog.get_logger("tierfleet.providers")


# The longest Retry-After believed: past it the wait is this long (the queue's countdown is
# clamped again to the broker's visibility timeout where it is scheduled).
MAX_RETRY_AFTER_S = 3600.0


def retry_after_s(headers: Any) -> float | None:
    """Seconds from a Retry-After (or retry-after-ms) header, as a number or an HTTP date;
    never NaN, negative or infinite."""
    if headers is None:
        return None
    if millis := headers.get("retry-after-ms"):
        try:
            return clamp_delay(float(millis) / 1000, MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return clamp_delay(float(value), MAX_RETRY_AFTER_S)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return clamp_delay(when.timestamp() - time.time(), MAX_RETRY_AFTER_S)


def error_for_status(
    provider: str, status: int, message: str, retry_after: float | None = None
) -> Exception:
    """Transient for 429, 529 and 5xx; permanent for any other status."""
    text = f"{provider} answered {status}: {message}"
    if status in RETRYABLE_STATUS or status >= 500:
        return TransientError(text, retry_after)
    return PermanentError(text)


def provider_error(provider: str, exc: Exception, secrets: Sequence[str]) -> Exception:
    """The fleet's error for an SDK exception; the provider's own message, secrets removed."""
    if isinstance(exc, status_errors()):
        status: Any = exc  # an SDK's APIStatusError: both SDKs' carry these three
        return error_for_status(
            provider,
            status.status_code,
            redact(status.message, secrets),
            retry_after_s(status.response.headers),
        )
    if isinstance(exc, network_errors()):
        return TransientError(redact(f"{provider}: {type(exc).__name__}: {exc}", secrets))
    return exc


class _WaitRetryAfter(tenacity.wait.wait_base):
    """The provider's Retry-After when it gave one, else exponential backoff with jitter."""

    def __init__(self, fallback: tenacity.wait.wait_base) -> None:
        self.fallback = fallback

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after_s is not None:
            return exc.retry_after_s
        return float(self.fallback(retry_state))


class _StopOnLongRetryAfter(tenacity.stop.stop_base):
    """Stop retrying in-call when the provider asks for a long wait: the step then waits on
    the queue (a countdown), not in a worker thread."""

    def __init__(self, cap_s: float) -> None:
        self.cap_s = cap_s

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return isinstance(exc, TransientError) and (exc.retry_after_s or 0.0) > self.cap_s


def _retry_in_call(exc: BaseException) -> bool:
    # A closed gate (limit reached, circuit open) waits on the queue, not in the worker.
    return isinstance(exc, TransientError) and not isinstance(exc, GateClosed)


def retrying(settings: Settings) -> tenacity.Retrying:
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(_retry_in_call),
        wait=_WaitRetryAfter(
            tenacity.wait_random_exponential(
                multiplier=settings.retry_backoff_s, max=settings.provider_retry_after_cap_s
            )
        ),
        stop=tenacity.stop_after_attempt(settings.provider_max_attempts)
        | _StopOnLongRetryAfter(settings.provider_retry_after_cap_s),
        reraise=True,
    )


class CallPool:
    """Runs one provider call per request, at most ``limit`` at a time, retrying each as
    ``retrying`` says; each request gets its answer or its final error."""

    def __init__(self, provider: str, settings: Settings, gate: ProviderGate | None = None) -> None:
        self.provider = provider
        self.settings = settings
        self.gate = gate
        self.secrets = settings.secrets()
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, settings.provider_concurrency), thread_name_prefix=provider
        )

    def once(self, call: Callable[[], T], model: str | None = None) -> T:
        """One API call, retried as ``retrying`` says, SDK errors mapped to the fleet's; each
        try holds a fleet-wide slot and reports to the provider's circuit breaker."""

        def attempt() -> T:
            gate = self.gate
            with gate.slot(self.provider, model) if gate else nullcontext():
                try:
                    result = call()
                except (*status_errors(), *network_errors()) as exc:
                    error = provider_error(self.provider, exc, self.secrets)
                    if gate and isinstance(error, TransientError):
                        gate.failed(self.provider)
                    raise error from None
            if gate:
                gate.succeeded(self.provider)
            return result

        return retrying(self.settings)(attempt)

    def _one(
        self, call: Callable[[CompletionRequest], Completion], request: CompletionRequest
    ) -> Completion:
        tries = 0

        def one_try() -> Completion:
            nonlocal tries
            _note(request, "try_sent", tries + 1)  # raises if it cannot: then no try is made
            tries += 1
            try:
                return call(request)
            except Exception as exc:
                # An error status or a refused connection is not billed; a timeout, or an
                # answer that came and could not be read, may have been.
                unbilled = isinstance(exc, (*status_errors(), *network_errors()))
                timed_out = isinstance(exc, sdk_errors("APITimeoutError"))
                billed = None if timed_out or not unbilled else False
                _note(request, "try_failed", tries, billed=billed, error=type(exc).__name__)
                raise

        return self.once(one_try, request.model.model_id)

    def run(
        self,
        call: Callable[[CompletionRequest], Completion],
        requests: Sequence[CompletionRequest],
    ) -> list[Completion | Exception]:
        futures = [self._pool.submit(self._one, call, r) for r in requests]
        out: list[Completion | Exception] = []
        for future in futures:
            try:
                out.append(future.result())
            except Exception as exc:  # each request keeps its own error
                out.append(exc)
        return out


def _note(request: CompletionRequest, event: str, n: int, **details: Any) -> None:
    """Tell the request's ``on_try`` (the bill's notes). A try that cannot be noted as sent
    is not sent (no note, no call): it fails as transient and is retried like any failed
    try. A failure note that cannot be written costs the call nothing (the bill then counts
    that try as unconfirmed, an overestimate)."""
    if request.on_try is None:
        return
    try:
        request.on_try(event, n, **details)
    except Exception as exc:
        log.warning("try_note_failed", note=event, error=f"{type(exc).__name__}: {exc}")
        if event == "try_sent":
            raise TransientError(f"the call could not be noted, so it was not made: {exc}") from exc
