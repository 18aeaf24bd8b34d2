"""Exact-cache keys: a hash of everything that changes the answer, scoped so it can never
cross tenants, agents or prompt versions."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from queues import keys
from queues.step import AgentStep, ChatMessage

_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def other_parts(msg: ChatMessage) -> list[Any]:
    """Content parts a model reads besides text (images, audio, files), whole: two requests
    that differ only in their image must not share an answer."""
    if not isinstance(msg.content, list):
        return []
    return [p for p in msg.content if p.get("type", "text") != "text"]


def _normalized_messages(step: AgentStep) -> list[dict[str, Any]]:
    out = []
    for msg in step.messages:
        out.append(
            {
                "role": msg.role,
                "text": normalize_text(msg.text()),
                "parts": other_parts(msg),
                "tool_call_id": msg.tool_call_id,
                "name": msg.name,
            }
        )
    return out


def exact_key(step: AgentStep, *, economy: bool = False) -> str:
    """Same tenant, agent, prompt version, conversation (non-text parts included), tools,
    schema, task kind, output allowance and plan -> same key."""
    request = {
        "messages": _normalized_messages(step),
        "tools": list(step.tools),
        "schema": step.response_schema,
        "task_kind": step.task_kind,
        "max_output_tokens": step.max_output_tokens,
        "economy": economy,
    }
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    return keys.exact_cache(step.tenant, step.agent, step.prompt_version, digest)
