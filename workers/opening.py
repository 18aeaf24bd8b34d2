"""How a stage opens a message, the first thing every task does.

Opening a message: a sealed envelope (another stage's hop) is taken once its seal checks
out; the ingress stage also takes an unsealed ``Submission`` from a producer and makes a
fresh envelope from it. Anything else never reaches a handler.

A message that does not open (malformed, oversized, forged) raises ``MalformedMessage`` or
``ForgedMessage``; the stage dead-letters it with the reason and stays up (workers/stage.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from queues.messages import Envelope, Submission
from queues.step import MAX_STEP_BYTES, check_step_size
from workers.errors import ForgedMessage, MalformedMessage
from workers.runtime import Runtime

Opener = Callable[[Runtime, str, Any, Any], Envelope]


def _validation_reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(root)"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


# An envelope carries the step and, once compressed, its prompt again, plus decisions.
MAX_ENVELOPE_BYTES = 3 * MAX_STEP_BYTES


def text_of(raw: Any) -> str:
    """Any message as text that can be stored: lone surrogates escaped, not raised on."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="replace")
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


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


def step_in(raw: Any) -> tuple[str | None, str | None]:
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
    if not (_encodes(tenant) and _encodes(step_id)):  # a lone surrogate names no step
        return None, None
    return tenant, step_id


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
