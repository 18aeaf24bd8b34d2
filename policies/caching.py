"""Exact-cache keys: a hash of the normalized request, scoped so it can never cross tenants,
agents or prompt versions."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from queues.messages import AgentStep

_SPACE = re.compile(r"\s+")
EXACT_PREFIX = "tf:xc:"


def normalize_text(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _normalized_messages(step: AgentStep) -> list[dict[str, Any]]:
    out = []
    for msg in step.messages:
        out.append(
            {
                "role": msg.role,
                "text": normalize_text(msg.text()),
                "tool_call_id": msg.tool_call_id,
                "name": msg.name,
            }
        )
    return out


def exact_key(step: AgentStep) -> str:
    """Same tenant, agent, prompt version, conversation, schema and task kind -> same key."""
    request = {
        "messages": _normalized_messages(step),
        "tools": list(step.tools),
        "schema": step.response_schema,
        "task_kind": step.task_kind,
    }
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    return f"{EXACT_PREFIX}{step.tenant}:{step.agent}:{step.prompt_version}:{digest}"
