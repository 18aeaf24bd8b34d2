"""The finalize stage (tf.finalize), run under the step's own task id: its return value is
the step's result in the Celery result backend. It appends the ledger entry, writes the exact
cache, stores a summarize step's answer for its session, frees leftover budget reservations
and parks dead letters, once per step even when the message is delivered twice."""

from __future__ import annotations

import time
from typing import Any

import structlog
from celery import Celery, Task
from celery.exceptions import Ignore

from policies.savings import frontier_price
from policies.semantic_cache import skip_reason
from policies.tokens import reservation_tokens
from queues import keys
from queues.base import Usage
from queues.messages import Envelope, Outcome, StepResult, StepStatus
from queues.records import CachedAnswer, LedgerCall, LedgerEntry
from queues.topology import TASK_NAMES, Stage
from workers.errors import FleetError, MalformedMessage, TransientError, as_fleet_error
from workers.logs import bound_step
from workers.opening import open_sealed, parse_envelope
from workers.runtime import LazyRuntime, Runtime
from workers.stage import (
    dead_letter_raw,
    delivery_number,
    redeliver_later,
    retry_delay,
    too_many_deliveries,
)
from workers.stores.dead_letters import dead_record

log = structlog.get_logger("tierfleet.finalize")


def result_of(env: Envelope, outcome: Outcome, now: float) -> StepResult:
    costs = env.costs
    return StepResult(
        step_id=env.step.step_id,
        tenant=env.step.tenant,
        status=outcome.status,
        answer=outcome.answer,
        tier=outcome.tier,
        model=outcome.model,
        provider=outcome.provider,
        cost_usd=sum(c.cost_usd for c in costs),
        overshoot_usd=sum(c.overshoot_usd for c in costs),
        **Usage.total(costs).usage_fields(),
        cache_hit=outcome.cache_hit,
        cached_from=outcome.cached_from,
        semantic=outcome.semantic,
        escalations=env.attempt,
        latency_ms=max(0.0, (now - env.submitted_at) * 1000),
        correct=outcome.correct,
        simulated=outcome.provider == "simulated" or any(c.simulated for c in costs),
        reason=outcome.reason,
        decisions=env.decisions,
    )


CALL_FIELDS = set(LedgerCall.model_fields)  # what a cost entry keeps on the ledger


def frontier_estimate(env: Envelope, outcome: Outcome, rt: Runtime) -> tuple[str, float]:
    """The frontier model and what the step would have cost sent to it once, uncached and
    uncompressed: its whole prompt, and the answer's output tokens."""
    frontier = rt.table.model_of(rt.table.top.name)
    step = env.step
    prompt = reservation_tokens(
        rt.counter, step.messages, step.tools, image_tokens=frontier.counting.image_tokens
    )
    accepted = [c for c in env.costs if c.accepted]
    if accepted:
        output = accepted[-1].tokens_out
    else:  # a cache hit's answer (or none): counted
        output = rt.counter.count_many([outcome.answer])[0] if outcome.answer else 0
    return frontier.name, frontier_price(frontier, prompt, output)


def ledger_entry(
    env: Envelope,
    result: StepResult,
    now: float,
    prices_version: str = "",
    frontier: tuple[str, float] = ("", 0.0),
) -> LedgerEntry:
    """The step's ledger line: who to charge, what it cost, and each model call it paid for
    (failed attempts included), so per-model totals reconcile with the providers' bills."""
    step = env.step
    return LedgerEntry(
        ts=now,
        **step.attribution(),
        lane=step.lane.value,
        status=result.status.value,
        tier=result.tier,
        model=result.model,
        provider=result.provider,
        **result.usage_fields(),
        cost_usd=result.cost_usd,
        overshoot_usd=result.overshoot_usd,
        prices=prices_version,
        calls=tuple(
            LedgerCall.model_validate(c.model_dump(include=CALL_FIELDS)) for c in env.costs
        ),
        latency_ms=result.latency_ms,
        cache_hit=result.cache_hit,
        cached_from=result.cached_from,
        semantic=result.semantic,
        escalations=result.escalations,
        attempts=len(env.costs),
        simulated=result.simulated,
        correct=result.correct,
        reason=result.reason,
        frontier_model=frontier[0],
        frontier_usd=frontier[1],
    )


def side_effects(
    env: Envelope, outcome: Outcome, result: StepResult, now: float, rt: Runtime
) -> None:
    """The ledger entry, the exact and semantic cache, the session summary, the budget's
    leftover reservations and the dead letter: done once per step (see ``handle``)."""
    step = env.step
    frontier = frontier_estimate(env, outcome, rt)
    entry = ledger_entry(env, result, now, rt.table.prices_version, frontier)
    rt.ledger.append(entry.to_record())
    rt.metrics.step_finished(entry)
    if outcome.status is StepStatus.ok and not outcome.cache_hit and env.cache_key:
        rt.cache.put(env.cache_key, CachedAnswer.of(outcome, env.step.step_id).to_record())
        if rt.settings.semantic_cache and not skip_reason(step, rt.settings.no_semantic_kinds):
            rt.bus.remember(env, outcome)
    if env.summary_of and outcome.status is StepStatus.ok and outcome.answer:
        rt.summaries.put(step.tenant, step.session_id, env.summary_of, outcome.answer.strip())
    rt.budgets.release_step(env)
    if outcome.status is StepStatus.dead_lettered:
        last_stage = env.decisions[-1].stage if env.decisions else "finalize"
        rt.metrics.dead_lettered(last_stage, outcome.reason)
        rt.dead.put(
            dead_record(
                step_id=env.step.step_id,
                stage=last_stage,
                reason=outcome.reason,
                envelope=env.to_wire(),
            )
        )


def release_claim(rt: Runtime, tenant: str, step_id: str) -> None:
    try:
        rt.finalized.release(tenant, step_id)
    except Exception as exc:  # it expires on its own
        log.warning("finalize_claim_kept", error=f"{type(exc).__name__}: {exc}")


def handle(env: Envelope, outcome: Outcome, rt: Runtime) -> StepResult:
    now = rt.clock()
    result = result_of(env, outcome, now)
    step = env.step
    if rt.finalized.done(step.tenant, step.step_id):
        log.info("finalize_repeated")
        return result
    if not rt.finalized.claim(step.tenant, step.step_id):
        # Another delivery of this finalize is doing the effects now and will store the
        # result; this one stores nothing. (Should that one die, its message comes back
        # after the claim has expired, and is done again.)
        log.info("finalize_in_progress")
        raise Ignore()
    try:
        side_effects(env, outcome, result, now, rt)
        rt.finalized.mark(step.tenant, step.step_id)
    except Exception:
        # Let the retry (or another delivery) take the effects on at once.
        release_claim(rt, step.tenant, step.step_id)
        raise
    log.info(
        "finalized",
        status=result.status.value,
        cost_usd=result.cost_usd,
        tier=result.tier,
        cache_hit=result.cache_hit,
    )
    return result


def finalize_raw(
    args: tuple[Any, ...], task_id: str | None, rt: Runtime, delivery: int = 1
) -> dict[str, Any]:
    """The step's result, from the task's arguments ``(envelope, outcome, seal)``. A message
    that does not open, or that is sealed but runs under another step's id, is dead-lettered
    and raises ``Ignore``: Celery then stores nothing under the task id it came with (which
    may name someone else's step)."""
    raw_env = args[0] if args else None
    try:
        if len(args) not in (2, 3):  # (envelope, outcome, seal); without a seal it is refused
            raise MalformedMessage(f"finalize takes 3 arguments, not {len(args)}")
        raw_env, raw_outcome, seal = (*args, None)[:3]
        open_sealed(rt, TASK_NAMES[Stage.finalize], seal, raw_env, raw_outcome)
        env = parse_envelope(raw_env)
        outcome = Outcome.model_validate_json(raw_outcome)
        expected = keys.result_id(env.step.tenant, env.step.step_id)
        if task_id != expected:
            raise MalformedMessage(f"finalize ran as task {task_id!r}, not as {expected!r}")
    except Exception as exc:
        dead_letter_raw(rt, "finalize", raw_env, f"malformed finalize message: {exc}")
        raise Ignore() from exc
    with bound_step(env, "finalize"):
        if (stop := too_many_deliveries(rt, delivery)) is not None:
            return failed(env, outcome, stop, rt)
        try:
            return handle(env, outcome, rt).model_dump(mode="json")
        except Ignore:
            raise
        except Exception as exc:
            return failed(env, outcome, exc, rt)


def failed(env: Envelope, outcome: Outcome, exc: Exception, rt: Runtime) -> dict[str, Any]:
    """Finalize's own failure path. Transient (Redis blinked or is full): finalize again,
    under the same id, after a countdown; this run stores nothing (``Ignore``). Finalize
    counts its own retries (its retry decisions in the envelope): it is the step's last
    chance to be recorded, whatever the stages before it used up. Permanent, or out of
    retries: the step's result says dead_lettered with both reasons, and the envelope is
    parked on tf.dead for replay."""
    error = as_fleet_error(exc)
    tries = sum(1 for d in env.decisions if d.stage == "finalize" and d.what == "retry")
    if isinstance(error, TransientError) and tries < rt.settings.max_transient_retries:
        delay = retry_delay(rt, tries, error.retry_after_s)
        why = f"transient: {error}; again in {delay:.2f}s"
        log.warning("finalize_retry", error=str(error), retries=tries, delay_s=delay)
        rt.bus.finalize(env.decide("finalize", "retry", why), outcome, countdown=delay)
        raise Ignore() from exc
    if not isinstance(exc, FleetError):
        log.error("finalize_error", error=str(error), exc_info=exc)
    exhausted = f"retries exhausted ({tries}): " if isinstance(error, TransientError) else ""
    reason = f"finalize failed, {exhausted}{error}"
    if outcome.reason:
        reason += f" (the step had ended {outcome.status.value}: {outcome.reason})"
    rt.metrics.dead_lettered("finalize", reason)
    try:
        rt.dead.put(
            dead_record(
                step_id=env.step.step_id, stage="finalize", reason=reason, envelope=env.to_wire()
            )
        )
    except Exception as parked:  # the store is what failed: the answer still goes out
        log.error("dead_letter_not_parked", error=f"{type(parked).__name__}: {parked}")
        reason += f" (not parked on tf.dead: {as_fleet_error(parked)})"
    result = result_of(env, Outcome(status=StepStatus.dead_lettered, reason=reason), rt.clock())
    return result.model_dump(mode="json")


def register(app: Celery, runtime: LazyRuntime) -> Task:
    # Side effects are guarded (done/mark), so a finalize run again never counts a step twice.
    @app.task(name=TASK_NAMES[Stage.finalize], bind=True, ignore_result=False)
    def finalize_stage(self: Task, *args: Any, **kwargs: Any) -> dict[str, Any]:
        rt = runtime()
        started = time.perf_counter()
        try:
            # Keywords are never sent: a message with any is malformed (an arity of 0).
            delivery = delivery_number(rt, self.request)
            return finalize_raw(() if kwargs else args, self.request.id, rt, delivery)
        except Ignore:
            raise
        except Exception as exc:
            raise redeliver_later(rt, exc) from exc
        finally:
            rt.metrics.stage_seconds.labels("finalize").observe(time.perf_counter() - started)

    return finalize_stage
