"""Tool results as a compression plan sees them: what each result was fetched for (its call
and the user turn before it), and a result that repeats or updates an earlier one told as a
pointer to it or as what changed."""

from __future__ import annotations

from collections.abc import Sequence

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
