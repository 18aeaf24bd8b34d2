"""What every stage does around its own work: open the message (a malformed, oversized or
forged one is dead-lettered, the worker stays up), bind the step's ids to the logs, and send
every failure down one path, ``fail``: any exception is first made Transient or Permanent
(``workers.errors.as_fleet_error``); a transient one sends the envelope back to its own stage
with a countdown, counted in the envelope (``retries``), until ``max_transient_retries``;
a permanent one, or the last transient one, dead-letters the step with the reason.
Celery's own retry machinery (``self.retry``, ``autoretry_for``) is not used anywhere.

If even the failure path fails (the broker or Redis is down), the message is rejected back
to its queue after a pause, so it is delivered again rather than acknowledged and lost.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import structlog
from celery import Celery, Task
from celery.backends.base import DisabledBackend
from celery.exceptions import Reject

from policies.retry import backoff_s, clamp_delay
from queues import keys
from queues.messages import Envelope, Outcome, StepResult, StepStatus
from queues.topology import TASK_NAMES, Stage
from workers.errors import (
    FleetError,
    GateClosed,
    MalformedMessage,
    PermanentError,
    TransientError,
    as_fleet_error,
)
from workers.logs import bound_step
from workers.opening import Opener, open_envelope, step_in, text_of
from workers.runtime import LazyRuntime, Runtime
from workers.stores.dead_letters import dead_record

log = structlog.get_logger("tierfleet.stage")

Handler = Callable[[Envelope, Runtime], None]


# What tf.dead keeps of a message that never became an envelope: enough to see what it was,
# never megabytes per letter.
MAX_DEAD_RAW = 64 * 1024


def dead_letter_raw(rt: Runtime, stage: str, raw: Any, reason: str) -> None:
    """Park a message that never became an envelope. Its step hears back only if it has no
    result yet: a forged message naming someone else's step cannot overwrite its answer."""
    tenant, step_id = step_in(raw)
    text = text_of(raw)
    if len(text) > MAX_DEAD_RAW:
        text = text[:MAX_DEAD_RAW] + f" ... (cut: {len(text)} characters in all)"
    rt.dead.put(dead_record(step_id=step_id, stage=stage, reason=reason, envelope=None, raw=text))
    rt.metrics.dead_lettered(stage, reason)
    if tenant and step_id:
        rt.results.store_if_absent(
            StepResult(
                step_id=step_id, tenant=tenant, status=StepStatus.dead_lettered, reason=reason
            )
        )
    log.error(
        "dead_lettered",
        stage=stage,
        step=keys.step_ref(tenant or "?", step_id or "?"),
        reason=reason,
    )


def dead_letter(rt: Runtime, env: Envelope, stage: str, reason: str) -> None:
    """End the step as dead-lettered: finalize records it, parks it on tf.dead, answers."""
    rt.bus.finalize(
        env.decide(stage, "dead_letter", reason),
        Outcome(status=StepStatus.dead_lettered, reason=reason),
    )


def budget_stop(rt: Runtime, env: Envelope, stage: str, reason: str) -> None:
    """End the step as budget_exceeded, with no answer and the reason."""
    rt.bus.finalize(
        env.decide(stage, "budget_exceeded", reason),
        Outcome(status=StepStatus.budget_exceeded, tier=env.tier, reason=reason),
    )


def retry_delay(rt: Runtime, retries: int, retry_after_s: float | None = None) -> float:
    """Backoff with jitter, at least what the provider asked for, never past
    ``max_countdown_s`` (a worker holds a message waiting out its countdown unacknowledged,
    renewing its lease; an unbounded one would overflow)."""
    delay = backoff_s(rt.settings.retry_backoff_s, retries)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return clamp_delay(delay, rt.settings.max_countdown_s) or 0.0


def fail(rt: Runtime, env: Envelope, stage: str, exc: BaseException) -> None:
    """The one failure path of every stage: back to the stage's own queue with a countdown
    (counted in the envelope), or dead-lettered with the reason. (Finalize and the semantic
    store send their retries themselves: finalize under the step's result id.)"""
    error = as_fleet_error(exc)
    if not isinstance(exc, FleetError):
        log.error("stage_error", error=str(error), exc_info=exc)
    if isinstance(error, GateClosed):
        wait_for_gate(rt, env, stage, error)
        return
    if isinstance(error, TransientError) and env.retries < rt.settings.max_transient_retries:
        delay = retry_delay(rt, env.retries, error.retry_after_s)
        retried = env.decide(
            stage, "retry", f"transient: {error}; again in {delay:.2f}s", retries=env.retries + 1
        )
        log.warning("transient_error", error=str(error), retries=env.retries, delay_s=delay)
        rt.bus.send(Stage(stage), retried, countdown=delay)
    elif isinstance(error, TransientError):
        dead_letter(rt, env, stage, f"retries exhausted ({env.retries}): {error}")
    else:
        dead_letter(rt, env, stage, str(error))


def wait_for_gate(rt: Runtime, env: Envelope, stage: str, closed: GateClosed) -> None:
    """No call was made (the provider is at its fleet-wide limit or its circuit is open): the
    step waits on its queue for as long as the gate says, without spending its retries, up
    to ``max_gate_waits`` waits (a provider that never comes back)."""
    waits = sum(1 for d in env.decisions if d.what == "wait")
    if waits >= rt.settings.max_gate_waits:
        dead_letter(rt, env, stage, f"waited {waits} times for a closed gate: {closed}")
        return
    delay = clamp_delay(closed.retry_after_s or retry_delay(rt, 0), rt.settings.max_countdown_s)
    delay = (delay or 0.0) + random.uniform(0.0, 1.0)  # not all at the same instant
    rt.bus.send(
        Stage(stage), env.decide(stage, "wait", f"{closed}; again in {delay:.1f}s"), countdown=delay
    )


def redeliver_later(rt: Runtime, exc: BaseException) -> Reject:
    """The failure path itself failed (the broker or Redis is down): the message goes back
    to its queue after a pause, never acknowledged unanswered."""
    log.error("failure_path_failed", error=f"{type(exc).__name__}: {exc}")
    time.sleep(min(5.0, retry_delay(rt, 2)))
    return Reject(f"redelivered: {type(exc).__name__}", requeue=True)


def isolated(rt: Runtime, env: Envelope, stage: str, action: Callable[[], None]) -> bool:
    """One step's part of a shared piece of work (a micro-batch, a batch job's results):
    whatever it raises goes down that step's own failure path, never its neighbours'. A
    shadow call that fails is dropped. If even the failure path fails, the step is logged as
    stranded, its neighbours go on, and False says the step was not dealt with."""
    try:
        action()
    except Exception as exc:
        if env.shadow_of is not None:
            log.warning("shadow_dropped", error=str(exc))
            return True
        try:
            fail(rt, env, stage, exc)
        except Exception as inner:
            log.critical("step_stranded", error=f"{type(inner).__name__}: {inner}")
            return False
    return True


def delivery_number(rt: Runtime, request: Any) -> int:
    """Which delivery of its message a task request is (1 unless the broker put it back)."""
    info = getattr(request, "delivery_info", None) or {}
    redelivered = bool(info.get("redelivered"))
    try:
        return rt.deliveries.count(str(getattr(request, "id", "") or ""), redelivered)
    except Exception as exc:  # uncounted, a redelivery is still treated as one
        log.warning("delivery_uncounted", error=f"{type(exc).__name__}: {exc}")
        return 2 if redelivered else 1


def redelivered(env: Envelope, stage: str, delivery: int) -> Envelope:
    """Note on the step's record that its message came back (its worker died holding it)."""
    if delivery <= 1:
        return env
    return env.decide(stage, "redelivered", f"delivery {delivery}: the worker holding it stopped")


def too_many_deliveries(rt: Runtime, delivery: int) -> PermanentError | None:
    """The reason to stop a message that keeps coming back, or None."""
    if delivery <= rt.settings.max_deliveries:
        return None
    return PermanentError(
        f"delivered {delivery} times without finishing: each time the worker holding it "
        "stopped (a step that kills its worker?)"
    )


def run_stage(
    rt: Runtime,
    stage: str,
    raw: Any,
    handler: Handler,
    *,
    seal: Any = None,
    opener: Opener = open_envelope,
    delivery: int = 1,
) -> None:
    try:
        env = opener(rt, TASK_NAMES[Stage(stage)], raw, seal)
    except Exception as exc:  # whatever it is, the message cannot be acted on
        reason = str(exc) if isinstance(exc, MalformedMessage) else f"unreadable: {exc!r}"
        dead_letter_raw(rt, stage, raw, reason)
        return
    with bound_step(env, stage):
        if (stop := too_many_deliveries(rt, delivery)) is not None:
            dead_letter(rt, env, stage, str(stop))
            return
        env = redelivered(env, stage, delivery)
        try:
            handler(env, rt)
        except Exception as exc:
            fail(rt, env, stage, exc)


def arity(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return f"a stage message takes (envelope, seal): it came with {len(args)} arguments" + (
        f" and keywords {sorted(kwargs)[:5]}" if kwargs else ""
    )


def no_results(app: Celery) -> DisabledBackend:
    """The backend of a task that must never store a result: a hop arrives with a task id and
    an ``ignore_result`` flag of the sender's choosing, and a stored ``None`` under a step's
    result id would overwrite its answer."""
    return DisabledBackend(app=app)


def register_stage(
    app: Celery, runtime: LazyRuntime, stage: Stage, handler: Handler, opener: Opener
) -> Task:
    """A stage's Celery task: a thin shell around ``run_stage``."""

    @app.task(name=TASK_NAMES[stage], bind=True, backend=no_results(app))
    def stage_task(self: Task, *args: Any, **kwargs: Any) -> None:
        # Any arguments are taken (Celery would fail a wrong arity before we could answer):
        # a message that is not (envelope[, seal]) is dead-lettered with the reason.
        rt = runtime()
        started = time.perf_counter()
        try:
            if not 1 <= len(args) <= 2 or kwargs:
                dead_letter_raw(rt, stage.value, args[0] if args else None, arity(args, kwargs))
                return
            seal = (*args, None)[1]
            delivery = delivery_number(rt, self.request)
            run_stage(
                rt, stage.value, args[0], handler, seal=seal, opener=opener, delivery=delivery
            )
        except Exception as exc:
            raise redeliver_later(rt, exc) from exc
        finally:
            rt.metrics.stage_seconds.labels(stage.value).observe(time.perf_counter() - started)

    return stage_task
