"""What goes on the calls stream (``tf:calls``), the provider's bill as the fleet sees it:
each call before it is made (``start``), each try an HTTP adapter sends or sees fail, and
the answer the moment it is in, or the failure. ``producers/bill.py`` reads it back: a call
cut off mid-way stays on the bill as unconfirmed, never unseen."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import structlog
import tenacity

from policies.tiers import ModelSpec
from queues import keys
from queues.messages import Envelope
from workers.errors import TRANSIENT, PermanentError
from workers.ports import Completion, TryNote
from workers.runtime import Runtime

log = structlog.get_logger("tierfleet.infer")


@dataclass(frozen=True)
class Admitted:
    """A step cleared to call ``model``: its worst case is reserved under ``reservation``."""

    env: Envelope
    model: ModelSpec
    reservation: str
    batch: bool = False  # goes through the provider's batch API, at its discount
    output_tokens: int | None = None  # what the reservation covers; None: the envelope's
    worst_usd: float = 0.0  # the call's worst case: every input token, max_tokens of output

    @property
    def max_tokens(self) -> int:
        """The call's max_tokens: never more output than the reservation covers."""
        return self.output_tokens or self.env.output_tokens


def price(item: Admitted, answer: Completion) -> float:
    if answer.billed_usd is not None:
        if not answer.billed_usd >= 0.0:  # negative or NaN: never into the ledger
            raise PermanentError(f"the provider stated a bill of {answer.billed_usd!r}")
        return answer.billed_usd
    return item.model.cost(
        answer.tokens_in,
        answer.tokens_out,
        answer.tokens_cached,
        answer.tokens_cache_write,
        batch=item.batch,
    )


def call_id_of(env: Envelope) -> str:
    """The id of the call this envelope makes (the same when it is redelivered)."""
    step = env.step
    return keys.call_id(
        step.tenant,
        step.step_id,
        env.submitted_at,
        env.attempt,
        env.retries,
        cross_check=env.first_answer is not None,
        shadow=env.shadow_of is not None,
        audit=env.audit_of is not None,
    )


def _call_fields(item: Admitted, call_try: str, rt: Runtime) -> dict[str, object]:
    env = item.env
    return {
        "ts": rt.clock(),
        "call_id": call_id_of(env),
        "try": call_try,
        **env.step.attribution(),
        "tier": env.tier,
        "model": item.model.name,
        "provider": item.model.provider,
        "batch": item.batch,
        "shadow": env.shadow_of is not None,
        "audit": env.audit_of is not None,  # a cache audit's judge (also a shadow: no budget)
        "host": socket.gethostname(),  # which process made the call: an operator's first
        "pid": os.getpid(),  # question about a call that never came back
    }


def record_start(items: list[Admitted], call_try: str, rt: Runtime, tries_noted: bool) -> None:
    """Note each call on the bill before it is made: a call whose worker dies before the
    answer is in stays on the bill as unconfirmed (the provider may have answered and billed
    it), priced by ``producers.bill`` at what such calls cost. With
    ``tries_noted`` the provider notes each try as it goes out (``try_notes``), and only
    those count: a call still queued behind the provider's concurrency cap was never sent."""
    rt.calls.append_many(  # all or none
        [
            {
                **_call_fields(item, call_try, rt),
                "event": "start",
                "worst_usd": item.worst_usd,
                "tries_noted": tries_noted,
            }
            for item in items
        ]
    )


def try_notes(item: Admitted, call_try: str, rt: Runtime) -> TryNote:
    """The notes a provider adapter makes on the bill of each try it sends and each try
    that fails, so that a call cut off mid-retry is on the bill as it stood: a try refused
    with an error status is not billed, one out at the kill may have been."""

    def note(event: str, n: int, *, billed: bool | None = None, error: str = "") -> None:
        fields = {"n": n, "billed": billed, "error": error} if event == "try_failed" else {"n": n}
        append_through_a_blink(rt, {**_call_fields(item, call_try, rt), "event": event, **fields})

    return note


def record_unanswered(item: Admitted, call_try: str, error: BaseException, rt: Runtime) -> None:
    """The call got no answer: nothing billed, but for its tries that timed out (each may
    have been answered and billed after the client gave up: its try notes say which).
    Retried through a short Redis outage; past that, best effort: the start record keeps
    the call on the bill as unconfirmed (an overestimate, never a call unseen)."""
    record = {
        **_call_fields(item, call_try, rt),
        "event": "unanswered",
        "error": f"{type(error).__name__}: {error}"[:300],
        "worst_usd": item.worst_usd,
    }
    try:
        append_through_a_blink(rt, record)
    except Exception as exc:
        log.warning("unanswered_call_not_recorded", error=f"{type(exc).__name__}: {exc}")


def append_through_a_blink(rt: Runtime, record: dict[str, object]) -> None:
    """A note that must not be lost to a Redis restart (a few seconds down) is tried again
    until Redis is back, for up to 15 s; past that the error goes on."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TRANSIENT),
        wait=tenacity.wait_exponential(multiplier=0.2, max=2.0),
        stop=tenacity.stop_after_delay(15.0),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            rt.calls.append(record)


def record_call(
    item: Admitted, answer: Completion, call_try: str, latency_ms: float, rt: Runtime
) -> float:
    """Put a provider call on the bill (the calls stream) the moment its answer is in, before
    anything that can fail; its cost. ``call_try`` tells apart two calls under one call id (a
    call made again after a redelivery) from one call recorded twice (a batch job's result
    read again). A bill the price table cannot take is recorded as refused, then raised."""
    try:
        cost, refused = price(item, answer), ""
    except PermanentError as exc:
        cost, refused = 0.0, str(exc)
    append_through_a_blink(  # the provider has billed it: the note waits out a blink
        rt,
        {
            **_call_fields(item, call_try, rt),
            "event": "answer",
            "tokens_in": answer.tokens_in,
            "tokens_out": answer.tokens_out,
            "tokens_cached": answer.tokens_cached,
            "tokens_cache_write": answer.tokens_cache_write,
            "cost_usd": cost,
            "simulated": answer.simulated,
            "latency_ms": latency_ms,
            "refused": refused,
            "worst_usd": item.worst_usd,
        },
    )
    if refused:
        raise PermanentError(refused)
    step = item.env.step
    rt.metrics.call_billed(
        item.model.name,
        (step.tenant, step.agent, step.workflow, step.task_kind),
        (answer.tokens_in, answer.tokens_cached, answer.tokens_out),
        cost,
        shadow=item.env.shadow_of is not None,
    )
    rt.metrics.call_seconds.labels(rt.metrics.cap("model", item.model.name)).observe(
        latency_ms / 1000
    )
    return cost
