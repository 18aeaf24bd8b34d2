"""The inference stage (tf.infer.<tier>.<lane>): micro-batches of steps go to the tier's
provider in one call; each answer is priced, budget-settled and judged (``outcomes``).
Batch-lane steps for a provider with a batch API are parked for a provider batch job
instead (``batch_lane``).

Budget: each call reserves its worst-case cost atomically before the provider is called and
settles the actual cost when the answer (or the failure) comes back.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import structlog
from celery import Celery, Task
from celery_batches import Batches, SimpleRequest

from policies.tiers import NANO, reservation_usd, to_nano_up
from policies.tokens import reservation_tokens
from queues import keys
from queues.messages import Envelope, Lane, Outcome, StepStatus
from queues.topology import TASK_NAMES, Stage
from workers.batch_lane import park
from workers.errors import TRANSIENT, MalformedMessage, PermanentError
from workers.logs import bound_step
from workers.outcomes import (
    EXPECTED_FAILURES,
    Admitted,
    conclude,
    failed,
    release_then,
    retry_or_dead,
)
from workers.ports import CompletionRequest, supports_batch
from workers.runtime import LazyRuntime, Runtime
from workers.stage import dead_letter, dead_letter_raw, open_envelope

log = structlog.get_logger("tierfleet.infer")

# What admitting a step can raise: a Redis blink, an unusable provider, an unknown tier.
ADMIT_FAILURES: tuple[type[Exception], ...] = (*TRANSIENT, PermanentError, KeyError)


def admit(env: Envelope, rt: Runtime) -> Admitted | None:
    """Reserve the call's worst case; a refusal ends the step as budget_exceeded. A batch-lane
    step for a provider with a batch API reserves at the batch price."""
    if env.tier is None:
        raise PermanentError("envelope reached inference without a tier")
    model = rt.table.pick(env.tier, env.model)
    if env.shadow_of is not None:  # the operator's check, not the session's spend
        return Admitted(env, model, reservation="")
    batch = env.step.lane is Lane.batch and supports_batch(rt.provider_for(model))
    tokens_in = reservation_tokens(
        rt.counter,
        env.request,
        env.step.tools,
        factor=model.counting.factor,
        image_tokens=model.counting.image_tokens,
    )
    # The call's max_tokens is exactly the output the reservation covers (Admitted carries
    # it to the request): the provider cannot be asked for more than was reserved.
    output_tokens = env.output_tokens
    tokens = tokens_in + output_tokens
    amount = to_nano_up(reservation_usd(model, tokens_in, output_tokens, batch=batch))
    step = env.step
    rid = keys.reservation(
        step.tenant, step.step_id, env.attempt, env.retries, env.first_answer is not None
    )
    refused = rt.budgets.reserve(env, rid, amount, tokens)
    if refused is not None:
        state = next(s for s in rt.budgets.states(env) if s.scope == refused)
        reason = (
            f"hard {refused} budget refuses ${amount / NANO:.6f} ({tokens} tokens) on "
            f"{model.name}: {state.describe()}"
        )
        rt.bus.finalize(
            env.decide("infer", "budget_exceeded", reason),
            Outcome(status=StepStatus.budget_exceeded, tier=env.tier, reason=reason),
        )
        return None
    return Admitted(env, model, rid, batch, output_tokens)


def call_provider(items: list[Admitted], rt: Runtime) -> None:
    """One provider call for items that share a model; failures retry or dead-letter each."""
    provider = rt.provider_for(items[0].model)
    started = time.perf_counter()
    try:
        answers = provider.complete(
            [
                CompletionRequest.for_step(i.env.step, i.model, i.env.request, i.max_tokens)
                for i in items
            ]
        )
        if len(answers) != len(items):
            raise PermanentError(f"{provider.name} gave {len(answers)} answers to {len(items)}")
    except EXPECTED_FAILURES as exc:
        log.warning("provider_failed", provider=provider.name, error=str(exc), size=len(items))
        for item in items:
            release_then(item, exc, rt)
        return
    except Exception as exc:
        # A provider bug must not lose the batch: each step is dead-lettered with the error.
        log.exception("provider_crashed", provider=provider.name, size=len(items))
        for item in items:
            release_then(item, PermanentError(f"internal error: {type(exc).__name__}: {exc}"), rt)
        return
    latency_ms = (time.perf_counter() - started) * 1000
    for item, answer in zip(items, answers, strict=True):
        with bound_step(item.env, "infer"):
            if isinstance(answer, Exception):
                failed(item, answer, provider.name, rt)
                continue
            try:
                conclude(item, answer, latency_ms, rt)
            except Exception as exc:
                log.exception("conclude_failed")
                rt.budgets.settle(item.env, item.reservation, 0)
                dead_letter(rt, item.env, "infer", f"internal error: {type(exc).__name__}: {exc}")


def _opened(message: Any, rt: Runtime) -> Envelope:
    """One message of a micro-batch, its arguments ``[envelope, seal]``, opened."""
    args = message if isinstance(message, list | tuple) else [message]
    raw, seal = [*args, None, None][:2]
    return open_envelope(rt, TASK_NAMES[Stage.infer], raw, seal)


def handle_batch(messages: list[Any], rt: Runtime) -> None:
    """A micro-batch: each message is the argument list of one request."""
    by_model: dict[str, list[Admitted]] = defaultdict(list)
    for message in messages:
        try:
            env = _opened(message, rt)
        except MalformedMessage as exc:
            raw = message[0] if isinstance(message, list | tuple) and message else message
            dead_letter_raw(rt, "infer", raw, str(exc))
            continue
        with bound_step(env, "infer"):
            try:
                item = admit(env, rt)
            except ADMIT_FAILURES as exc:
                if env.shadow_of is not None:
                    log.warning("shadow_dropped", error=str(exc))
                elif isinstance(exc, TRANSIENT):
                    retry_or_dead(env, exc, rt)
                else:
                    dead_letter(rt, env, "infer", f"cannot infer: {exc}")
                continue
        if item is not None:
            by_model[item.model.name].append(item)
    for items in by_model.values():
        parked = [item for item in items if item.batch]
        if parked:
            park(parked, rt)
        live = [item for item in items if not item.batch]
        if live:
            call_provider(live, rt)


def register(app: Celery, runtime: LazyRuntime) -> Task:
    settings = runtime.settings

    @app.task(
        name=TASK_NAMES[Stage.infer],
        base=Batches,
        flush_every=settings.batch_flush_every,
        flush_interval=settings.batch_flush_interval_s,
    )
    def infer_stage(requests: list[SimpleRequest]) -> None:
        log.debug("micro_batch", size=len(requests), ids=[r.id for r in requests])
        handle_batch([list(r.args or ()) for r in requests], runtime())

    return infer_stage
