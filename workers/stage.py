"""What every stage does around its own work: parse the envelope (a malformed message is
dead-lettered, the worker stays up), bind the step's ids to the logs, and apply the error
rules (Transient -> retry with backoff, Permanent -> dead-letter with the reason)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog
from celery import Celery, Task
from pydantic import ValidationError

from policies.retry import backoff_s
from queues.messages import Envelope, Outcome, StepResult, StepStatus
from queues.topology import TASK_NAMES, Stage
from workers.errors import TRANSIENT, MalformedMessage, PermanentError
from workers.logs import bound_step
from workers.runtime import LazyRuntime, Runtime
from workers.stores.dead_letters import dead_record

log = structlog.get_logger("tierfleet.stage")

Handler = Callable[[Envelope, Runtime], None]


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(root)"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def parse_envelope(raw: Any) -> Envelope:
    try:
        return Envelope.from_wire(raw)
    except ValidationError as exc:
        raise MalformedMessage(f"malformed envelope: {_validation_reason(exc)}") from exc
    except (TypeError, ValueError) as exc:
        raise MalformedMessage(f"malformed envelope: {exc}") from exc


def _step_id_in(raw: Any) -> str | None:
    """Best effort: the step id of a message that does not parse, so its producer hears back."""
    try:
        doc = raw if isinstance(raw, dict) else json.loads(raw)
        step_id = doc.get("step", {}).get("step_id")
    except (TypeError, ValueError, AttributeError):
        return None
    return step_id if isinstance(step_id, str) and step_id else None


def dead_letter_raw(rt: Runtime, stage: str, raw: Any, reason: str) -> None:
    step_id = _step_id_in(raw)
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    rt.dead.put(dead_record(step_id=step_id, stage=stage, reason=reason, envelope=None, raw=text))
    if step_id:
        rt.results.store(
            StepResult(step_id=step_id, status=StepStatus.dead_lettered, reason=reason)
        )
    log.error("dead_lettered", stage=stage, step_id=step_id, reason=reason)


def dead_letter(rt: Runtime, env: Envelope, stage: str, reason: str) -> None:
    """End the step as dead-lettered: finalize records it, parks it on tf.dead, answers."""
    rt.bus.finalize(
        env.decide(stage, "dead_letter", reason),
        Outcome(status=StepStatus.dead_lettered, reason=reason),
    )


def retry_delay(rt: Runtime, retries: int) -> float:
    return backoff_s(rt.settings.retry_backoff_s, retries)


def run_stage(
    rt: Runtime,
    stage: str,
    raw: Any,
    handler: Handler,
    *,
    retries: int,
    retry: Callable[[float], None],
) -> None:
    try:
        env = parse_envelope(raw)
    except MalformedMessage as exc:
        dead_letter_raw(rt, stage, raw, str(exc))
        return
    with bound_step(env, stage):
        try:
            handler(env, rt)
        except TRANSIENT as exc:
            if retries >= rt.settings.max_transient_retries:
                dead_letter(rt, env, stage, f"retries exhausted ({retries}): {exc}")
                return
            log.warning("transient_error", error=str(exc), retries=retries)
            retry(retry_delay(rt, retries))
        except PermanentError as exc:
            dead_letter(rt, env, stage, str(exc))
        except Exception as exc:
            # A bug must not lose the step: it is dead-lettered with the error as the reason.
            log.exception("stage_failed")
            dead_letter(rt, env, stage, f"internal error: {type(exc).__name__}: {exc}")


def register_stage(app: Celery, runtime: LazyRuntime, stage: Stage, handler: Handler) -> Task:
    """A stage's Celery task: a thin shell around ``run_stage``, retried by Celery itself."""

    @app.task(name=TASK_NAMES[stage], bind=True)
    def stage_task(self: Task, raw: str) -> None:
        run_stage(
            runtime(),
            stage.value,
            raw,
            handler,
            retries=self.request.retries,
            retry=lambda delay: self.retry(countdown=delay),
        )

    return stage_task
