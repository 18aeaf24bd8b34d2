"""Tool results as a compression plan sees them: what each result was fetched for (its call
and the user turn before it), and a result that repeats or updates an earlier one told as a
pointer to it or as what changed; and what a result still tells once dropped: its facts."""

from __future__ import annotations

from collections.abc import Sequence

from policies.facts import facts_in
from policies.structured import Line, changes, parse_json, render_lines, subject_of
from queues.step import ChatMessage


def requests(messages: Sequence[ChatMessage], last_user: str = "") -> dict[str, str]:
    """What each tool result is cut for: its call and the user message before it."""
    out: dict[str, str] = {}
    calls: dict[str, str] = {}
    for msg in messages:
        if msg.role == "user":
            last_user = msg.text()
        for call in msg.tool_calls or ():
            calls[call.id] = f"{call.function.name}({call.function.arguments})"
        if msg.role == "tool":
            out[msg.tool_call_id or ""] = f"{calls.get(msg.tool_call_id or '', '')}\n{last_user}"
    return out


def restated_results(
    messages: Sequence[ChatMessage],
) -> tuple[list[ChatMessage], dict[str, str]]:
    """A result that repeats an earlier one becomes a pointer to it; a result about an
    entity an earlier result showed (the reservation fetched again after a change, the
    record an update returns) keeps only what changed. Each result is rewritten from the
    results before it alone, so its text is the same in every later call. Also returns, for
    each rewritten result, the id of the result it points back to."""
    out: list[ChatMessage] = []
    bases: dict[str, str] = {}
    by_text: dict[str, str] = {}  # result text -> the id of its last full showing
    latest: dict[str, tuple[str, list[Line]]] = {}  # entity -> (id, its last rendering)
    for msg in messages:
        ident = msg.tool_call_id or ""
        if msg.role == "tool" and isinstance(msg.content, str) and parse_json(msg.content):
            original = msg.content
            lines = render_lines(original)
            about = subject_of(lines)
            if original in by_text:
                bases[ident] = by_text[original]
                msg = msg.model_copy(update={"content": "[the same result as above]"})
            elif about is not None and about in latest:
                bases[ident], shown = latest[about]
                told = changes(shown, lines)
                head = f"[{about}: as above, except]" if told else f"[{about}: unchanged]"
                msg = msg.model_copy(update={"content": "\n".join([head, *told])})
            by_text.setdefault(original, ident)
            if about is not None:
                latest[about] = (ident, lines)
        out.append(msg)
    return out, bases


def _field(line: Line) -> str:
    return line.key.rsplit(".", 1)[-1] or "records"


def fact_tokens(text: str, seen: set[str]) -> list[tuple[str, list[str]]]:
    """The facts (ids, numbers, codes) of a tool result by the field or table that holds
    them, in order, one entry per line or table row, for the lines that hold a fact
    ``seen`` lacks (a row keeps all its facts, so a price stays with its flight); ``seen``
    then gains them. Field names, statuses, names and prose go, and so does a line whose
    facts the prompt already shows."""
    out: dict[str, list[str]] = {}
    new: set[str] = set()
    for line in render_lines(text):
        if not line.record:
            continue
        head = f"{line.key}:"
        is_field = bool(line.key) and line.text.startswith(head)
        value = line.text[len(head) :] if is_field else line.text
        held = sorted(facts_in(value), key=value.find)
        # A line or row with a new fact keeps all of its facts; a repeated row goes.
        if set(held) - seen and " ".join(held) not in out.get(key := _field(line), []):
            new.update(held)
            out.setdefault(key, []).append(" ".join(held))
    seen.update(new)
    return list(out.items())
