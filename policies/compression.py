"""Compression plans: keep the static prefix byte-for-byte, keep the recent window, trim bulky
tool results (head and tail, saying what was cut).

Only content after the static prefix (the leading system/developer messages) is ever
rewritten, so a provider's prefix cache stays warm across a session's calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from policies.tokens import TokenCounter
from queues.messages import ChatMessage, leading_system


@dataclass(frozen=True)
class CompressionPlan:
    keep_last: int = 8
    # The window's start moves in steps of this many messages, not one per call: between
    # steps every call extends the previous call's prompt, so the provider's prefix cache
    # serves the whole history. 1 = the classic rolling window (cache-hostile).
    window_stride: int = 1
    tool_result_max_tokens: int = 600
    head_share: float = 0.67  # of a trimmed tool result's budget, the rest goes to its tail


@dataclass(frozen=True)
class CompressionReport:
    dropped_messages: int
    trimmed_results: int
    tokens_cut: int

    @property
    def changed(self) -> bool:
        return bool(self.dropped_messages or self.trimmed_results)

    def describe(self) -> str:
        return (
            f"dropped {self.dropped_messages} old messages, trimmed {self.trimmed_results} "
            f"tool results, cut {self.tokens_cut} tokens"
        )


def window_start(body: Sequence[ChatMessage], keep_last: int, stride: int = 1) -> int:
    """Index where the kept recent window begins: at least ``keep_last`` messages, the start
    snapped down to a multiple of ``stride``, never splitting a tool call from its result."""
    start = max(0, len(body) - keep_last)
    start -= start % max(1, stride)
    while start > 0 and body[start].role == "tool":
        start -= 1
    return start


def trim_text(counter: TokenCounter, text: str, budget: int, head_share: float) -> tuple[str, int]:
    """Keep the head and tail of ``text`` within ``budget`` tokens; return it and tokens cut."""
    total = counter.count_many([text])[0]
    if total <= budget:
        return text, 0
    head_n = int(budget * head_share)
    head = counter.head(text, head_n)
    tail = counter.tail(text, budget - head_n)
    cut = total - budget
    return f"{head}\n[... {cut} tokens of tool output cut ...]\n{tail}", cut


def compress(
    counter: TokenCounter, messages: Sequence[ChatMessage], plan: CompressionPlan
) -> tuple[tuple[ChatMessage, ...], CompressionReport]:
    prefix = leading_system(tuple(messages))
    body = list(messages[len(prefix) :])

    # The opening user message states the task: it stays even when the middle goes.
    opening = [body[0]] if body and body[0].role == "user" else []
    rest = body[len(opening) :]
    start = window_start(rest, plan.keep_last, plan.window_stride)
    dropped = rest[:start]
    kept = rest[start:]
    tokens_cut = sum(counter.count_many([m.text() for m in dropped])) if dropped else 0

    trimmed = 0
    out: list[ChatMessage] = []
    for msg in kept:
        if msg.role == "tool" and isinstance(msg.content, str):
            text, cut = trim_text(
                counter, msg.content, plan.tool_result_max_tokens, plan.head_share
            )
            if cut:
                msg = msg.model_copy(update={"content": text})
                trimmed += 1
                tokens_cut += cut
        out.append(msg)
    report = CompressionReport(len(dropped), trimmed, tokens_cut)
    return (*prefix, *opening, *out), report
