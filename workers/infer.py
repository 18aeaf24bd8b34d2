"""The inference stage (tf.infer.<tier>.<lane>): micro-batches of steps go to the tier's
provider in one call; each answer is priced, budget-settled and judged (``outcomes``).
Batch-lane steps for a provider with a batch API are parked for a provider batch job
instead (``batch_lane``).

Budget: each call reserves its worst-case cost atomically before the provider is called and
settles the actual cost when the answer (or the failure) comes back.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import replace
from functools import partial
from typing import Any

import structlog
from celery import Celery, Task
from celery_batches import SimpleRequest

from policies.tiers import TierTable
from queues.messages import Envelope
from queues.topology import TASK_NAMES, Stage
from workers.admission import admit, call_messages
from workers.batch_lane import park
from workers.batching import RequeueingBatches
from workers.call_notes import Admitted, record_start, record_unanswered, try_notes
from workers.errors import FleetError, MalformedMessage, PermanentError
from workers.logs import bound_step
from workers.opening import open_envelope
from workers.outcomes import conclude_or_release, failed, release_then
from workers.ports import Completion, CompletionRequest
from workers.runtime import LazyRuntime, Runtime
from workers.stage import (
    dead_letter_raw,
    delivery_number,
    isolated,
    redelivered,
    too_many_deliveries,
)

log = structlog.get_logger("tierfleet.infer")


def request_of(item: Admitted, notes: Any, table: TierTable) -> CompletionRequest:
    """The provider request of an admitted call (a judge's carries no tools or schema)."""
    env = item.env
    request = CompletionRequest.for_step(
        env.step, item.model, call_messages(env, table), item.max_tokens, notes
    )
    if env.judge_kind:
        return replace(request, tools=(), response_schema=None, task_kind=env.judge_kind)
    return request


def call_provider(items: list[Admitted], rt: Runtime) -> list[Admitted]:
    """One provider call for items that share a model; failures retry or dead-letter each.
    The call is on the bill before it is made (``record_start``): no start record, no call.
    Returns the items left stranded (even their failure path failed: the broker or Redis is
    down), whose messages must go back to the broker rather than be acknowledged."""
    stranded: list[Admitted] = []
    provider = rt.provider_for(items[0].model)
    call_try = uuid.uuid4().hex  # this call: another delivery's call of the same step differs
    started = time.perf_counter()
    try:
        record_start(items, call_try, rt, provider.notes_tries)
        answers = provider.complete(
            [request_of(i, try_notes(i, call_try, rt), rt.table) for i in items]
        )
        if len(answers) != len(items):
            raise PermanentError(f"{provider.name} gave {len(answers)} answers to {len(items)}")
    except Exception as exc:  # every item takes the failure path on its own
        rt.metrics.provider_failed(provider.name, exc)
        if isinstance(exc, FleetError):
            log.warning("provider_failed", provider=provider.name, error=str(exc), size=len(items))
        else:
            log.exception("provider_crashed", provider=provider.name, size=len(items))
        for item in items:
            with bound_step(item.env, "infer"):
                record_unanswered(item, call_try, exc, rt)
                if not isolated(rt, item.env, "infer", partial(release_then, item, exc, rt)):
                    stranded.append(item)
        return stranded
    latency_ms = (time.perf_counter() - started) * 1000
    log_batch(items, answers, latency_ms)
    for item, answer in zip(items, answers, strict=True):
        with bound_step(item.env, "infer"):
            if isinstance(answer, BaseException):
                record_unanswered(item, call_try, answer, rt)
                outcome = partial(failed, item, answer, provider.name, rt)
            else:
                outcome = partial(conclude_or_release, item, answer, latency_ms, rt, call_try)
            if not isolated(rt, item.env, "infer", outcome):
                stranded.append(item)
    return stranded


def log_batch(
    items: list[Admitted], answers: list[Completion | Exception], latency_ms: float
) -> None:
    """What an operator sizes a tier's workers by: the batch's tokens/s (the engine's own
    time for a local model) and how long its steps waited for it."""
    done = [a for a in answers if isinstance(a, Completion)]
    tokens = sum(a.tokens_in + a.tokens_out for a in done)
    out = sum(a.tokens_out for a in done)
    busy_s = sum(a.engine_s for a in done) or latency_ms / 1000
    now = time.time() - latency_ms / 1000
    waits = [now - i.env.handed_over_at for i in items]
    log.info(
        "batch_answered",
        model=items[0].model.name,
        size=len(items),
        answered=len(done),
        latency_ms=round(latency_ms, 1),
        tokens_per_s=round(tokens / busy_s, 1) if busy_s else 0.0,
        output_tokens_per_s=round(out / busy_s, 1) if busy_s else 0.0,
        queue_wait_max_s=round(max(waits), 3),
    )


def _opened(message: Any, rt: Runtime) -> Envelope:
    """One message of a micro-batch, its arguments ``[envelope, seal]``, opened."""
    args = message if isinstance(message, list | tuple) else [message]
    if len(args) not in (1, 2):
        raise MalformedMessage(f"an inference message takes 2 arguments, not {len(args)}")
    raw, seal = [*args, None][:2]
    return open_envelope(rt, TASK_NAMES[Stage.infer], raw, seal)


def _admitted(message: Any, rt: Runtime, delivery: int) -> tuple[Admitted | None, bool]:
    """Open and admit one message of a micro-batch, and whether it was dealt with (False:
    stranded). It never raises: a message that does not open is dead-lettered, a step that
    cannot be admitted takes the failure path."""
    try:
        env = _opened(message, rt)
    except Exception as exc:
        raw = message[0] if isinstance(message, list | tuple) and message else message
        reason = str(exc) if isinstance(exc, MalformedMessage) else f"unreadable: {exc!r}"
        try:
            dead_letter_raw(rt, "infer", raw, reason)
        except Exception as inner:
            log.critical("message_stranded", error=f"{type(inner).__name__}: {inner}")
            return None, False
        return None, True
    admitted: list[Admitted | None] = [None]

    def run() -> None:
        if (stop := too_many_deliveries(rt, delivery)) is not None:
            raise stop
        admitted[0] = admit(redelivered(env, "infer", delivery), rt)

    with bound_step(env, "infer"):
        dealt_with = isolated(rt, env, "infer", run)
    return admitted[0], dealt_with


def handle_batch(
    messages: list[Any], rt: Runtime, deliveries: list[int] | None = None
) -> list[int]:
    """A micro-batch: each message is the argument list of one request, ``deliveries`` which
    delivery of its message each is. No step's failure reaches another: each is opened,
    admitted, parked or called, and failed on its own. (A message the broker put back comes
    in a batch of its own: workers/batching.py.) Past ``max_deliveries`` it is
    dead-lettered. Returns the positions of the messages left stranded (even their failure
    path failed), which go back to the broker instead of being acknowledged."""
    by_model: dict[str, list[Admitted]] = defaultdict(list)
    stranded: list[int] = []
    position: dict[int, int] = {}
    for i, (message, delivery) in enumerate(
        zip(messages, deliveries or [1] * len(messages), strict=True)
    ):
        item, dealt_with = _admitted(message, rt, delivery)
        if not dealt_with:
            stranded.append(i)
        if item is not None:
            position[id(item)] = i
            by_model[item.model.name].append(item)
    for items in by_model.values():
        parked = [item for item in items if item.batch]
        if parked:
            park(parked, rt)
        live = [item for item in items if not item.batch]
        if live:
            stranded += [position[id(item)] for item in call_provider(live, rt)]
    return sorted(stranded)


def register(app: Celery, runtime: LazyRuntime) -> Task:
    settings = runtime.settings

    @app.task(
        name=TASK_NAMES[Stage.infer],
        base=RequeueingBatches,
        flush_every=settings.batch_flush_every,
        flush_interval=settings.batch_flush_interval_s,
    )
    def infer_stage(requests: list[SimpleRequest]) -> list[str]:
        """The ids of the requests left stranded: workers/batching.py puts them back."""
        log.debug("micro_batch", size=len(requests), ids=[r.id for r in requests])
        rt = runtime()
        started = time.perf_counter()
        # Keywords are never sent: a request with any is malformed (an arity of 0).
        messages = [[] if r.kwargs else list(r.args or ()) for r in requests]
        stranded = handle_batch(messages, rt, [delivery_number(rt, r) for r in requests])
        rt.metrics.stage_seconds.labels("infer").observe(time.perf_counter() - started)
        return [requests[i].id for i in stranded]

    return infer_stage
