"""The inference stage (tf.infer.<tier>.<lane>): micro-batches of steps go to the tier's
provider in one call; each answer is priced, budget-settled and judged, then accepted,
escalated to the next tier by re-enqueue, or dead-lettered.

Budget: each call reserves its worst-case cost atomically before the provider is called and
settles the actual cost right after, whatever the verdict: a rejected answer is still paid.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import structlog
from celery import Celery, Task
from celery_batches import Batches, SimpleRequest

from policies.budgets import reservation_id
from policies.cascade import judge, next_after
from policies.tiers import NANO, ModelSpec, reservation_usd, to_nano, to_nano_up
from policies.tokens import request_tokens
from queues.messages import CostEntry, Envelope, Outcome, StepStatus
from queues.topology import TASK_NAMES, Stage
from workers.errors import TRANSIENT, MalformedMessage, PermanentError, TransientError
from workers.logs import bound_step
from workers.ports import Completion, CompletionRequest
from workers.runtime import LazyRuntime, Runtime
from workers.stage import dead_letter, dead_letter_raw, parse_envelope, retry_delay

log = structlog.get_logger("tierfleet.infer")

# Provider failures with a known remedy: retry (transient) or dead-letter (permanent).
EXPECTED_FAILURES: tuple[type[Exception], ...] = (*TRANSIENT, PermanentError)


@dataclass(frozen=True)
class Admitted:
    env: Envelope
    model: ModelSpec
    reservation: str


def admit(env: Envelope, rt: Runtime) -> Admitted | None:
    """Reserve the call's worst case; a refusal ends the step as budget_exceeded."""
    if env.tier is None:
        raise PermanentError("envelope reached inference without a tier")
    model = rt.table.model_of(env.tier)
    tokens_in = request_tokens(rt.counter, env.request, env.step.tools)
    amount = to_nano_up(reservation_usd(model, tokens_in, env.step.max_output_tokens))
    rid = reservation_id(env.step.step_id, env.attempt, env.retries)
    if rt.budgets.reserve(env, rid, amount) is None:
        state = rt.budgets.state(env.step.tenant, env.step.session_id)
        reason = f"hard budget refuses ${amount / NANO:.6f} on {model.name}: {state.describe()}"
        rt.bus.finalize(
            env.decide("infer", "budget_exceeded", reason),
            Outcome(status=StepStatus.budget_exceeded, tier=env.tier, reason=reason),
        )
        return None
    return Admitted(env, model, rid)


def conclude(item: Admitted, answer: Completion, latency_ms: float, rt: Runtime) -> None:
    env, model, tier = item.env, item.model, item.env.tier or ""
    cost = answer.billed_usd
    if cost is None:
        cost = model.cost(
            answer.tokens_in, answer.tokens_out, answer.tokens_cached, answer.tokens_cache_write
        )
    rt.budgets.settle(env, item.reservation, to_nano(cost))
    verdict = judge(
        answer.text,
        task_kind=env.step.task_kind,
        schema=env.step.response_schema,
        confidence=answer.confidence,
        min_confidence=rt.table.tier(tier).accept_min_confidence,
    )
    env = env.charge(
        CostEntry(
            tier=tier,
            model=model.name,
            provider=model.provider,
            tokens_in=answer.tokens_in,
            tokens_out=answer.tokens_out,
            tokens_cached=answer.tokens_cached,
            tokens_cache_write=answer.tokens_cache_write,
            cost_usd=cost,
            latency_ms=latency_ms,
            accepted=verdict.accepted,
            simulated=answer.simulated,
        )
    )
    step = next_after(rt.table, tier, verdict)
    if step.action == "accept":
        rt.bus.finalize(
            env.decide("infer", "accept", step.why),
            Outcome(
                status=StepStatus.ok,
                answer=answer.text,
                tier=tier,
                model=model.name,
                provider=model.provider,
                correct=answer.correct,
            ),
        )
    elif step.action == "escalate":
        escalated = env.decide(
            "infer",
            f"escalate->{step.tier}",
            step.why,
            tier=step.tier,
            attempt=env.attempt + 1,
            retries=0,
        )
        rt.bus.send(Stage.infer, escalated)
    else:
        dead_letter(rt, env, "infer", step.why)


def retry_or_dead(env: Envelope, exc: Exception, rt: Runtime) -> None:
    """Transient: back on this tier's queue after a backoff. Otherwise: dead-lettered."""
    if isinstance(exc, TRANSIENT) and env.retries < rt.settings.max_transient_retries:
        delay = retry_delay(rt, env.retries)
        if isinstance(exc, TransientError) and exc.retry_after_s is not None:
            delay = max(delay, exc.retry_after_s)  # the provider said when to come back
        retried = env.decide(
            "infer", "retry", f"transient: {exc}; again in {delay:.2f}s", retries=env.retries + 1
        )
        rt.bus.send(Stage.infer, retried, countdown=delay)
    elif isinstance(exc, TRANSIENT):
        dead_letter(rt, env, "infer", f"retries exhausted ({env.retries}): {exc}")
    else:
        dead_letter(rt, env, "infer", str(exc))


def _release_then(item: Admitted, exc: Exception, rt: Runtime) -> None:
    rt.budgets.settle(item.env, item.reservation, 0)
    retry_or_dead(item.env, exc, rt)


def call_provider(items: list[Admitted], rt: Runtime) -> None:
    """One provider call for items that share a model; failures retry or dead-letter each."""
    provider = rt.provider_for(items[0].model)
    started = time.perf_counter()
    try:
        answers = provider.complete(
            [CompletionRequest.for_step(i.env.step, i.model, i.env.request) for i in items]
        )
        if len(answers) != len(items):
            raise PermanentError(f"{provider.name} gave {len(answers)} answers to {len(items)}")
    except EXPECTED_FAILURES as exc:
        log.warning("provider_failed", provider=provider.name, error=str(exc), size=len(items))
        for item in items:
            _release_then(item, exc, rt)
        return
    except Exception as exc:
        # A provider bug must not lose the batch: each step is dead-lettered with the error.
        log.exception("provider_crashed", provider=provider.name, size=len(items))
        for item in items:
            _release_then(item, PermanentError(f"internal error: {type(exc).__name__}: {exc}"), rt)
        return
    latency_ms = (time.perf_counter() - started) * 1000
    for item, answer in zip(items, answers, strict=True):
        with bound_step(item.env, "infer"):
            if isinstance(answer, Exception):
                _failed(item, answer, provider.name, rt)
                continue
            try:
                conclude(item, answer, latency_ms, rt)
            except Exception as exc:
                log.exception("conclude_failed")
                rt.budgets.settle(item.env, item.reservation, 0)
                dead_letter(rt, item.env, "infer", f"internal error: {type(exc).__name__}: {exc}")


def _failed(item: Admitted, exc: Exception, provider: str, rt: Runtime) -> None:
    """One request of a micro-batch failed: it retries or dead-letters on its own."""
    if not isinstance(exc, EXPECTED_FAILURES):
        exc = PermanentError(f"internal error: {type(exc).__name__}: {exc}")
    log.warning("provider_failed", provider=provider, error=str(exc))
    _release_then(item, exc, rt)


def handle_batch(raws: list[Any], rt: Runtime) -> None:
    by_model: dict[str, list[Admitted]] = defaultdict(list)
    for raw in raws:
        try:
            env = parse_envelope(raw)
        except MalformedMessage as exc:
            dead_letter_raw(rt, "infer", raw, str(exc))
            continue
        with bound_step(env, "infer"):
            try:
                item = admit(env, rt)
            except TRANSIENT as exc:
                retry_or_dead(env, exc, rt)
                continue
            except (PermanentError, KeyError) as exc:
                dead_letter(rt, env, "infer", f"cannot infer: {exc}")
                continue
        if item is not None:
            by_model[item.model.name].append(item)
    for items in by_model.values():
        call_provider(items, rt)


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
        handle_batch([r.args[0] if r.args else None for r in requests], runtime())

    return infer_stage
