"""Which earlier messages a call still needs: pure selection over the chat history.

History is cut into units that stay or go together (an assistant's tool calls with their
results, a user message, an assistant reply). User corrections are never dropped. The rest
are scored by type, recency and size and kept greedily within a token budget; whatever goes is
named in one note, so the model knows the conversation had more. The note keeps the facts
(ids, numbers, codes) of the dropped results that the prompt does not show elsewhere, by
field, so a later turn that needs a reservation id or an amount still finds it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from policies.facts import facts_in
from policies.tool_results import fact_tokens
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


def without_replies(
    messages: Sequence[ChatMessage], reasoning_tools: Collection[str]
) -> list[ChatMessage]:
    """Old history less the assistant's own prose (its facts live in the results and user
    turns) and its calls to reasoning tools with their results."""
    kept: list[ChatMessage] = []
    reasoning: set[str] = set()  # ids of calls to reasoning tools, whose results go too
    for msg in messages:
        if msg.role == "assistant":
            made = list(msg.tool_calls or ())
            if all(c.function.name in reasoning_tools for c in made):
                reasoning.update(c.id for c in made)
                continue
            msg = msg.model_copy(update={"content": None}) if msg.content else msg
        elif msg.role == "tool" and msg.tool_call_id in reasoning:
            continue
        kept.append(msg)
    return kept


def held_facts(unit: Unit, seen: set[str] | None = None) -> str:
    """What a dropped tool exchange still tells: its calls and the facts of its results by
    field (``reservation_id: ZFA04Y; flights: HAT001 2024-05-01``), less those in ``seen``
    (the facts the prompt already shows; it gains these); "" for other units and for
    results with no new fact."""
    if unit.kind != "tool":
        return ""
    seen = set() if seen is None else seen
    groups = [g for m in unit.messages if m.role == "tool" for g in fact_tokens(m.text(), seen)]
    if not groups:
        return ""
    calls = ", ".join(
        f"{c.function.name}({c.function.arguments})" for c in unit.messages[0].tool_calls or ()
    )
    return f"{calls or 'tool results'}: " + "; ".join(f"{k}: {' | '.join(v)}" for k, v in groups)


def dropped_facts(raw: Sequence[Unit], history: Sequence[Unit], keep: Sequence[bool]) -> list[str]:
    """``held_facts`` of each dropped unit (``raw``: the units as they came, ``history``:
    as sent), less the facts a kept unit or an earlier dropped one already shows."""
    shown = [m.text() for u, k in zip(history, keep, strict=True) if k for m in u.messages]
    seen = facts_in("\n".join(shown))
    return [held_facts(u, seen) for u, k in zip(raw, keep, strict=True) if not k]


def fill_budget(
    history: Sequence[Unit],
    sizes: Sequence[int],
    budget: int | None,
    dropped_sizes: Sequence[int] | None = None,
) -> list[bool]:
    """Which units to keep: corrections always, the rest by worth per token (type x recency
    / size, so one bulky old result does not crowd out many short turns) while the budget
    lasts. ``dropped_sizes``: what each unit still costs when dropped (its facts in the
    note); the budget pays for those first, and keeping a unit whole costs the difference.
    ``budget`` None keeps everything."""
    if budget is None:
        return [True] * len(history)
    floor = list(dropped_sizes) if dropped_sizes is not None else [0] * len(history)
    keep = [u.kind == "correction" for u in history]
    used = sum(s if k else f for s, f, k in zip(sizes, floor, keep, strict=True))
    extra = [max(0, s - f) for s, f in zip(sizes, floor, strict=True)]
    newest = len(history) - 1
    worth = {
        i: TYPE_WEIGHT.get(u.kind, 0.5) * RECENCY ** (newest - i) / max(1, extra[i])
        for i, u in enumerate(history)
        if not keep[i]
    }
    for i in sorted(worth, key=lambda i: (-worth[i], -i)):
        if used + extra[i] <= budget:
            keep[i] = True
            used += extra[i]
    return keep


def omitted_note(
    dropped: Sequence[Unit],
    summaries: Mapping[str, str] | None = None,
    held: Sequence[str] = (),
) -> ChatMessage:
    """One note for everything the budget dropped: what kinds went, the facts their results
    held (``held_facts`` of each), and the summaries known for them (written by the cheap
    tier, see ``summary_request``)."""
    kinds: dict[str, int] = {}
    for unit in dropped:
        kinds[unit.describe()] = kinds.get(unit.describe(), 0) + 1
    what = "; ".join(f"{n} x {k}" if n > 1 else k for k, n in kinds.items())
    count = sum(len(u.messages) for u in dropped)
    facts = [h for h in held if h]
    kept = "; the facts their results held:\n" + "\n".join(facts) if facts else ""
    told = [summaries[k] for k in map(unit_key, dropped) if k in summaries] if summaries else []
    short = "; in short:\n" + "\n".join(f"- {t}" for t in told) if told else ""
    return ChatMessage(
        role="user",
        content=f"[context note: {count} earlier messages omitted to save tokens: {what}"
        f"{kept}{short}]",
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
