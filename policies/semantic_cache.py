"""When the semantic cache may answer a step, and under which scope.

A semantic hit serves an answer written for a *different* request, so it is only safe where
the two requests share everything but the wording of the question: the same tenant, agent,
prompt version (system prompt + tool schemas), embedding model and conversation state before
the last user turn, and an answer from a tier at least as strong as the step needs. Those
make the scope; a lookup only ever searches its own scope. A turn that carries tool results
newer than the last user message is never answered semantically: the tool output is what the
model must read, and a paraphrase match on the question says nothing about it. Nor is a
last user turn that carries an image, audio or a file, for the same reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass

from policies.caching import normalize_text, other_parts
from policies.routing import route_by_rules
from policies.tiers import TierTable
from queues.step import AgentStep, ChatMessage, leading_system


@dataclass(frozen=True)
class SemanticScope:
    tenant: str
    agent: str
    prompt_version: str
    state: str  # hash of the conversation before the last user turn
    embedder: str  # model@version: vectors from another model never meet
    tier_floor: int  # the rank of the weakest tier whose answer this step may take

    @property
    def key(self) -> str:
        """What entries and lookups match on, exactly (the tier floor is a range filter)."""
        blob = json.dumps([self.tenant, self.agent, self.prompt_version, self.state, self.embedder])
        return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _last_user_index(messages: tuple[ChatMessage, ...]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            return i
    return None


def question_of(step: AgentStep) -> str:
    """The text the semantic layer embeds: the last user turn."""
    index = _last_user_index(step.messages)
    return "" if index is None else normalize_text(step.messages[index].text())


def conversation_state(step: AgentStep) -> str:
    """Hash of everything between the static prefix and the last user turn."""
    index = _last_user_index(step.messages) or 0
    start = len(leading_system(step.messages))
    earlier = [
        [m.role, normalize_text(m.text()), other_parts(m), m.tool_call_id or ""]
        for m in step.messages[start:index]
    ]
    return hashlib.sha256(json.dumps(earlier).encode()).hexdigest()[:24]


def skip_reason(step: AgentStep, no_semantic_kinds: Collection[str]) -> str | None:
    """Why the semantic layer must not answer this step, or None when it may."""
    if step.task_kind in no_semantic_kinds:
        return f"task kind {step.task_kind!r} is not semantically cacheable"
    index = _last_user_index(step.messages)
    if index is None:
        return "no user turn to match"
    if any(m.role == "tool" or m.tool_calls for m in step.messages[index + 1 :]):
        return "the turn carries new tool results"
    if any(other_parts(m) for m in step.messages[index:]):
        return "the turn carries an image, audio or a file, which its words do not describe"
    if not question_of(step):
        return "the user turn has no text"
    return None


def tier_floor(table: TierTable, step: AgentStep) -> int:
    """The rank of the tier the rules would start this step at (length aside): a cached answer
    from a weaker tier is not good enough for it."""
    route = route_by_rules(
        table,
        task_kind=step.task_kind,
        prompt_tokens=0,
        has_schema=step.response_schema is not None,
    )
    return table.tier(route.tier).rank


def scope_of(table: TierTable, step: AgentStep, embedder: str) -> SemanticScope:
    return SemanticScope(
        tenant=step.tenant,
        agent=step.agent,
        prompt_version=step.prompt_version,
        state=conversation_state(step),
        embedder=embedder,
        tier_floor=tier_floor(table, step),
    )
