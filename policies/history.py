"""Which earlier messages a call still needs: pure selection over the chat history.

History is cut into units that stay or go together (an assistant's tool calls with their
results, a user message, an assistant reply). User corrections are never dropped. The rest
are scored by type, recency and size and kept greedily within a token budget; whatever goes is
named in one note, so the model knows the conversation had more.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from queues.step import ChatMessage

# A user taking something back or changing course: kept however old.
CORRECTION = re.compile(
    r"\b(no|not|don't|actually|instead|wrong|mistake|correction|i meant|rather|wait|"
    r"change (?:it|that|my mind))\b",
    re.IGNORECASE,
)
# What a unit is worth keeping, before its age counts: users state intent and constraints,
# tool results hold the facts, the assistant's own replies are derived from both.
TYPE_WEIGHT = {"user": 1.0, "tool": 0.8, "reply": 0.3}
RECENCY = 0.85  # a unit's worth shrinks by this factor per newer unit


@dataclass(frozen=True)
class Unit:
    messages: tuple[ChatMessage, ...]
    kind: str  # user, correction, tool, reply

    def describe(self) -> str:
        if self.kind == "tool":
            names = [c.function.name for c in self.messages[0].tool_calls or ()]
            return "tool results of " + ", ".join(names) if names else "tool results"
        return {"user": "user message", "correction": "user correction"}.get(self.kind, "reply")


def unit_key(unit: Unit) -> str:
    """A name for a unit's content, the same in every call: its summary is stored under it."""
    blob = "\n".join(m.model_dump_json() for m in unit.messages)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def is_correction(message: ChatMessage) -> bool:
    return message.role == "user" and bool(CORRECTION.search(message.text()))


def units(messages: Sequence[ChatMessage]) -> list[Unit]:
    """The history cut into units; a tool call is never separated from its results."""
    out: list[Unit] = []
    i = 0
    while i < len(messages):
        msg = messages[i]
        if msg.role == "assistant" and msg.tool_calls:
            ids = {c.id for c in msg.tool_calls}
            j = i + 1
            while (
                j < len(messages) and messages[j].role == "tool" and messages[j].tool_call_id in ids
            ):
                j += 1
            out.append(Unit(tuple(messages[i:j]), "tool"))
            i = j
            continue
        if msg.role == "user":
            kind = "correction" if is_correction(msg) else "user"
        else:
            kind = "tool" if msg.role == "tool" else "reply"
        out.append(Unit((msg,), kind))
        i += 1
    return out


def fill_budget(history: Sequence[Unit], sizes: Sequence[int], budget: int | None) -> list[bool]:
    """Which units to keep: corrections always, the rest by worth per token (type x recency
    / size, so one bulky old result does not crowd out many short turns) while the budget
    lasts. ``budget`` None keeps everything."""
    if budget is None:
        return [True] * len(history)
    keep = [u.kind == "correction" for u in history]
    used = sum(s for s, k in zip(sizes, keep, strict=True) if k)
    newest = len(history) - 1
    worth = {
        i: TYPE_WEIGHT.get(u.kind, 0.5) * RECENCY ** (newest - i) / max(1, sizes[i])
        for i, u in enumerate(history)
        if not keep[i]
    }
    for i in sorted(worth, key=lambda i: (-worth[i], -i)):
        if used + sizes[i] <= budget:
            keep[i] = True
            used += sizes[i]
    return keep


def omitted_note(
    dropped: Sequence[Unit], summaries: Mapping[str, str] | None = None
) -> ChatMessage:
    """One note for everything the budget dropped: what kinds went, and the summaries known
    for them (written by the cheap tier, see ``summary_request``)."""
    kinds: dict[str, int] = {}
    for unit in dropped:
        kinds[unit.describe()] = kinds.get(unit.describe(), 0) + 1
    what = "; ".join(f"{n} x {k}" if n > 1 else k for k, n in kinds.items())
    count = sum(len(u.messages) for u in dropped)
    told = [summaries[k] for k in map(unit_key, dropped) if k in summaries] if summaries else []
    short = "; in short:\n" + "\n".join(f"- {t}" for t in told) if told else ""
    return ChatMessage(
        role="user",
        content=f"[context note: {count} earlier messages omitted to save tokens: {what}{short}]",
    )


SUMMARY_INSTRUCTIONS = (
    "You condense one earlier exchange of an agent's conversation into a single line that "
    "replaces it in the agent's context. Keep every identifier, number, date, amount and "
    "code it holds, and what it says about them; no commentary, no advice."
)


def summary_request(unit: Unit) -> tuple[ChatMessage, ...]:
    """The messages of the cheap-tier step that summarizes ``unit``."""
    text = "\n".join(f"{m.role}: {m.text()}" for m in unit.messages)
    return (
        ChatMessage(role="system", content=SUMMARY_INSTRUCTIONS),
        ChatMessage(role="user", content=text),
    )
