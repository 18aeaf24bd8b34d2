"""What every stage does around its own work: open the message (a malformed, oversized or
forged one is dead-lettered, the worker stays up), bind the step's ids to the logs, and
apply the error rules (Transient -> retry with backoff, Permanent -> dead-letter with the
reason).

Opening a message: a sealed envelope (another stage's hop) is taken once its seal checks
out; the ingress stage also takes an unsealed ``Submission`` from a producer and makes a
fresh envelope from it. Anything else never reaches a handler."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog
from celery import Celery, Task
from celery.backends.base import DisabledBackend
from pydantic import ValidationError

from policies.retry import backoff_s
from queues import keys
from queues.messages import (
    MAX_STEP_BYTES,
    Envelope,
    Outcome,
    StepResult,
    StepStatus,
    Submission,
    check_step_size,
)
from queues.topology import TASK_NAMES, Stage
from workers.errors import TRANSIENT, ForgedMessage, MalformedMessage, PermanentError
from workers.logs import bound_step
from workers.runtime import LazyRuntime, Runtime
from workers.stores.dead_letters import dead_record

log = structlog.get_logger("tierfleet.stage")

Handler = Callable[[Envelope, Runtime], None]
Opener = Callable[[Runtime, str, Any, Any], Envelope]


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(root)"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


# An envelope carries the step and, once compressed, its prompt again, plus decisions.
MAX_ENVELOPE_BYTES = 3 * MAX_STEP_BYTES


def _text(raw: Any) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    return raw if isinstance(raw, str) else json.dumps(raw, default=str)


def parse_envelope(raw: Any) -> Envelope:
    """An envelope from its JSON, unchecked: only for what the fleet stored itself."""
    if isinstance(raw, str | bytes) and len(raw) > MAX_ENVELOPE_BYTES:
        raise MalformedMessage(f"envelope of {len(raw)} bytes; the most is {MAX_ENVELOPE_BYTES}")
    try:
        return Envelope.from_wire(raw)
    except ValidationError as exc:
        raise MalformedMessage(f"malformed envelope: {_validation_reason(exc)}") from exc
    except (TypeError, ValueError, RecursionError) as exc:
        raise MalformedMessage(f"malformed envelope: {type(exc).__name__}: {exc}") from exc


def open_sealed(rt: Runtime, task: str, seal: Any, *parts: Any) -> None:
    """Raise ForgedMessage unless ``parts`` carry the fleet's seal for ``task``."""
    if not all(isinstance(p, str) for p in parts) or not rt.sealer.check(seal, task, *parts):
        why = "no seal" if seal is None else "a seal that does not match"
        raise ForgedMessage(
            f"forged or unsealed message for {task}: it carries {why}; only the fleet's own "
            "stages send envelopes (producers submit a step)"
        )


def open_envelope(rt: Runtime, task: str, raw: Any, seal: Any) -> Envelope:
    """A stage's envelope: sealed by the fleet, then parsed."""
    open_sealed(rt, task, seal, raw)
    return parse_envelope(raw)


def open_submission(rt: Runtime, raw: Any) -> Envelope:
    """A producer's submission (unsealed) made into a fresh envelope."""
    if isinstance(raw, str | bytes) and len(raw) > MAX_ENVELOPE_BYTES:
        raise MalformedMessage(f"submission of {len(raw)} bytes; the most is {MAX_STEP_BYTES}")
    try:
        submission = Submission.model_validate_json(raw)
        check_step_size(submission.step)
    except ValidationError as exc:
        raise MalformedMessage(f"malformed submission: {_validation_reason(exc)}") from exc
    except (TypeError, ValueError, RecursionError) as exc:
        raise MalformedMessage(f"malformed submission: {type(exc).__name__}: {exc}") from exc
    return Envelope.admit(submission, rt.clock())


def open_ingress(rt: Runtime, task: str, raw: Any, seal: Any) -> Envelope:
    """The ingress stage takes a producer's submission, or a sealed envelope from a stage
    (a summarize step the compress stage asked for)."""
    return open_submission(rt, raw) if seal is None else open_envelope(rt, task, raw, seal)


def _step_in(raw: Any) -> tuple[str | None, str | None]:
    """Best effort: the tenant and step id of a message that does not open, so its producer
    hears back."""
    try:
        doc = raw if isinstance(raw, dict) else json.loads(raw)
        step = doc.get("step", {})
        tenant, step_id = step.get("tenant"), step.get("step_id")
    except (TypeError, ValueError, AttributeError, RecursionError):
        return None, None
    if not (isinstance(tenant, str) and tenant and isinstance(step_id, str) and step_id):
        return None, None
    return tenant, step_id


def dead_letter_raw(rt: Runtime, stage: str, raw: Any, reason: str) -> None:
    """Park a message that never became an envelope. Its step hears back only if it has no
    result yet: a forged message naming someone else's step cannot overwrite its answer."""
    tenant, step_id = _step_in(raw)
    rt.dead.put(
        dead_record(step_id=step_id, stage=stage, reason=reason, envelope=None, raw=_text(raw))
    )
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
    seal: Any = None,
    opener: Opener = open_envelope,
) -> None:
    try:
        env = opener(rt, TASK_NAMES[Stage(stage)], raw, seal)
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


def no_results(app: Celery) -> DisabledBackend:
    """The backend of a task that must never store a result: a hop arrives with a task id and
    an ``ignore_result`` flag of the sender's choosing, and a stored ``None`` under a step's
    result id would overwrite its answer."""
    return DisabledBackend(app=app)


def register_stage(
    app: Celery, runtime: LazyRuntime, stage: Stage, handler: Handler, opener: Opener
) -> Task:
    """A stage's Celery task: a thin shell around ``run_stage``, retried by Celery itself
    (the retry carries the same arguments, seal included)."""

    @app.task(name=TASK_NAMES[stage], bind=True, backend=no_results(app))
    def stage_task(self: Task, raw: str, seal: str | None = None) -> None:
        run_stage(
            runtime(),
            stage.value,
            raw,
            handler,
            retries=self.request.retries,
            retry=lambda delay: self.retry(countdown=delay),
            seal=seal,
            opener=opener,
        )

    return stage_task
