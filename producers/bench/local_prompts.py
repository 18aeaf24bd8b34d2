"""The local benchmark's prompts: agent steps of recorded tau-bench sessions, side by side
as concurrent agents send them, each cut to what the model can hold."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from producers.recorded import tau_bench_workload
from queues.step import AgentStep, ChatMessage

Counter = Callable[[Sequence[ChatMessage]], int]  # a prompt's tokens as the model sees them


def capped(messages: Sequence[ChatMessage], limit: int, count: Counter) -> tuple[ChatMessage, ...]:
    """The messages cut to at most ``limit`` tokens: the oldest turns after the system
    prompt go first (a tool result never loses the call it answers), then the system
    prompt's tail. The newest turn is kept whole."""
    head = [m for m in messages[:1] if m.role == "system"]
    turns = list(messages[len(head) :])
    while len(turns) > 1 and count([*head, *turns]) > limit:
        turns.pop(0)
        while len(turns) > 1 and turns[0].role == "tool":
            turns.pop(0)
    if head and count([*head, *turns]) > limit:
        text = head[0].text()
        over = count([*head, *turns]) - limit
        keep = max(0, len(text) - int(over * len(text) / max(count(head), 1)) - 16)
        head = [head[0].model_copy(update={"content": text[:keep]})]
    return (*head, *turns)


def session_steps(
    path: Path,
    *,
    sessions: int,
    steps_per_session: int,
    prompt_tokens: int,
    max_new_tokens: int,
    count: Counter,
) -> list[AgentStep]:
    """``steps_per_session`` steps of each of ``sessions`` sessions, interleaved (step 1 of
    every session, then step 2, ...: agents running side by side), each capped."""
    per_session = [
        [
            step.model_copy(
                update={
                    "tenant": "bench",
                    "messages": capped(step.messages, prompt_tokens, count),
                    "max_output_tokens": max_new_tokens,
                }
            )
            for step in session[:steps_per_session]
        ]
        for session in tau_bench_workload(path, sessions).sessions
    ]
    depth = max((len(s) for s in per_session), default=0)
    return [s[i] for i in range(depth) for s in per_session if i < len(s)]
