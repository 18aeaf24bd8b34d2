"""Compression plans: the static prefix byte-for-byte, the recent window whole, the older
history pruned to a budget, tool output compacted, told as changes to an earlier result
about the same entity, and cut to what the request needs.

Only content after the static prefix (the leading system/developer messages, the last cache
breakpoint every call shares) is ever rewritten. Everything before the window is a function
of the messages before the window's start alone, and that start moves in steps
(``window_stride``): between steps each call's prompt extends the previous one, so a
provider's prefix cache serves the whole history, not just the system prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from policies.history import (
    Unit,
    dropped_facts,
    fill_budget,
    held_facts,
    omitted_note,
    unit_key,
    units,
    without_replies,
)
from policies.structured import (
    Request,
    extract,
    parse_json,
    render_lines,
)
from policies.text import final_paragraph, last_user_text
from policies.text_select import select_sentences
from policies.tokens import TokenCounter
from policies.tool_results import requests, restated_results
from queues.config.budgets import BudgetConfig
from queues.config.compression import CompressionConfig
from queues.step import ChatMessage, leading_system

DEFAULTS = CompressionConfig()  # the defaults are written once, in the config

# (text, query, token budget) -> shorter text: the prompt compressor for long free text.
TextCompressor = Callable[[str, str, int], str]


@dataclass(frozen=True)
class CompressionPlan:
    keep_last: int = DEFAULTS.keep_last_messages
    # The window's start moves in steps of this many messages, not one per call: between
    # steps every call extends the previous call's prompt, so the provider's prefix cache
    # serves the whole history. 1 = the classic rolling window (cache-hostile).
    window_stride: int = DEFAULTS.window_stride
    # For the messages before the window (filled by worth per token); None: no cap.
    history_budget_tokens: int | None = DEFAULTS.history_budget_tokens
    # The omitted note keeps the facts (ids, numbers, codes) of dropped results, paid from
    # the budget, so an id or amount a later turn needs survives the cut.
    keep_dropped_facts: bool = DEFAULTS.keep_dropped_facts
    drop_old_replies: bool = True  # the assistant's own old prose; its facts stay in results
    # Tools whose calls are the assistant's own reasoning: dropped before the window with
    # the old replies.
    reasoning_tools: frozenset[str] = frozenset({"think"})
    # Ask the cheap tier for a one-line summary of each tool exchange the budget drops; the
    # note that replaces them carries the summaries known so far.
    summarize_dropped: bool = DEFAULTS.summarize_dropped
    compact_json: bool = True  # JSON tool output as key/value lines and tables (lossless)
    # Beyond it, keep the records the request needs.
    tool_result_max_tokens: int = DEFAULTS.tool_result_max_tokens
    text_max_tokens: int = DEFAULTS.text_max_tokens  # longer free text: the prompt compressor
    text_ratio: float = DEFAULTS.text_ratio  # of such a message's tokens to keep

    @classmethod
    def of(cls, config: CompressionConfig) -> CompressionPlan:
        """The plan a fleet's configuration asks for."""
        return cls(
            keep_last=config.keep_last_messages,
            window_stride=config.window_stride,
            history_budget_tokens=config.history_budget_tokens,
            keep_dropped_facts=config.keep_dropped_facts,
            tool_result_max_tokens=config.tool_result_max_tokens,
            text_max_tokens=config.text_max_tokens,
            text_ratio=config.text_ratio,
            summarize_dropped=config.summarize_dropped,
        )

    def economy(self, history_budget: int, factor: float = 0.5) -> CompressionPlan:
        """The tighter plan of a step past its soft budget."""
        budget = min(history_budget, self.history_budget_tokens or history_budget)
        return replace(
            self,
            keep_last=max(2, int(self.keep_last * factor)),
            history_budget_tokens=budget,
            tool_result_max_tokens=max(100, int(self.tool_result_max_tokens * factor)),
            text_ratio=self.text_ratio * factor,
        )


def plan_for(config: CompressionConfig, budgets: BudgetConfig, economy: bool) -> CompressionPlan:
    """The plan of one step: the configured one, or its economy version past a soft budget."""
    plan = CompressionPlan.of(config)
    return plan.economy(budgets.economy_history_tokens, budgets.economy_factor) if economy else plan


@dataclass(frozen=True)
class CompressionReport:
    dropped_messages: int
    trimmed_results: int  # tool results cut to the records the request needs
    compacted_results: int  # JSON tool results rewritten as lines and tables
    compressed_texts: int  # long free-text messages put through the prompt compressor
    tokens_before: int
    tokens_after: int
    summarized: int = 0  # dropped units the note tells in short
    to_summarize: tuple[Unit, ...] = ()  # dropped tool exchanges with no summary yet

    @property
    def tokens_cut(self) -> int:
        return self.tokens_before - self.tokens_after

    @property
    def changed(self) -> bool:
        return self.tokens_cut != 0 or self.dropped_messages > 0

    def describe(self) -> str:
        text = (
            f"{self.tokens_before} -> {self.tokens_after} tokens after the prefix: dropped "
            f"{self.dropped_messages} old messages, compacted {self.compacted_results} and "
            f"trimmed {self.trimmed_results} tool results, compressed {self.compressed_texts} "
            "long texts"
        )
        if self.summarized:
            text += f"; {self.summarized} dropped exchanges told in short"
        return text


def window_start(body: Sequence[ChatMessage], keep_last: int, stride: int = 1) -> int:
    """Index where the kept recent window begins: at least ``keep_last`` messages, the start
    snapped down to a multiple of ``stride``, never splitting a tool call from its results
    (so results the agent has not acted on yet are always in the window)."""
    start = max(0, len(body) - keep_last)
    start -= start % max(1, stride)
    while start > 0 and body[start].role == "tool":
        start -= 1
    return start


class Compressor:
    """One call's compression: ``compress`` below is the whole recipe."""

    def __init__(
        self,
        counter: TokenCounter,
        plan: CompressionPlan,
        texts: TextCompressor | None,
        summaries: Mapping[str, str] | None = None,
    ):
        self.counter = counter
        self.plan = plan
        self.texts = texts or self._select
        self.summaries = summaries or {}
        self.trimmed = self.compacted = self.compressed = self.summarized = 0
        self.to_summarize: list[Unit] = []

    def _count(self, texts: list[str]) -> list[int]:
        return self.counter.count_many(texts)

    def _select(self, text: str, query: str, budget: int) -> str:
        return select_sentences(text, query, budget, self._count)

    def tool_result(self, msg: ChatMessage, request: str) -> ChatMessage:
        if not isinstance(msg.content, str):
            return msg
        lines = render_lines(msg.content)
        text, omitted = extract(
            lines, Request(request), self.plan.tool_result_max_tokens, self._count
        )
        if omitted:
            self.trimmed += 1
        elif self.plan.compact_json and parse_json(msg.content) is not None:
            self.compacted += text != msg.content  # the rendered lines, whole
        else:
            text = msg.content
        return msg if text == msg.content else msg.model_copy(update={"content": text})

    def free_text(self, msg: ChatMessage, query: str) -> ChatMessage:
        if not isinstance(msg.content, str) or msg.role == "tool":
            return msg
        size = self._count([msg.content])[0]
        if size <= self.plan.text_max_tokens:
            return msg
        budget = max(1, int(size * self.plan.text_ratio))
        self.compressed += 1
        return msg.model_copy(update={"content": self.texts(msg.content, query, budget)})

    def results(self, window: Sequence[ChatMessage], last_user: str = "") -> list[ChatMessage]:
        """Each result is cut for its own call and the user message before it, so its text
        never changes from one call to the next."""
        asked = requests(window, last_user)
        return [
            self.tool_result(m, asked[m.tool_call_id or ""]) if m.role == "tool" else m
            for m in window
        ]

    def unpoint(
        self,
        kept: Sequence[ChatMessage],
        bases: Mapping[str, str],
        originals: Sequence[ChatMessage],
        last_user: str,
    ) -> list[ChatMessage]:
        """A result told as changes to (or a repeat of) an earlier one that the budget
        dropped is shown in full again."""
        present = {m.tool_call_id for m in kept if m.role == "tool"}
        missing = {i for i, base in bases.items() if i in present and base not in present}
        if not missing:
            return list(kept)
        asked = requests(originals, last_user)
        full = {m.tool_call_id: m for m in originals if m.tool_call_id in missing}
        return [
            self.tool_result(full[m.tool_call_id], asked[m.tool_call_id])
            if m.role == "tool" and m.tool_call_id in full
            else m
            for m in kept
        ]

    def old_history(
        self, old: Sequence[ChatMessage], last_user: str
    ) -> tuple[list[ChatMessage], int]:
        """The part before the window: replies dropped, results compacted, a budget filled."""
        plan = self.plan
        kept = without_replies(old, plan.reasoning_tools) if plan.drop_old_replies else list(old)
        # Facts are read from the results as they came (JSON), before they are compacted.
        raw = units(kept)
        kept = self.results(kept, last_user)
        history = units(kept)
        sizes = [sum(self._count([m.text() for m in u.messages])) for u in history]
        # What a unit costs once dropped: its facts in the note (at most; fewer once the
        # facts the kept units show are left out).
        floor = self._count([held_facts(u) for u in raw]) if plan.keep_dropped_facts else None
        keep = fill_budget(history, sizes, plan.history_budget_tokens, floor)
        out: list[ChatMessage] = []
        dropped = [u for u, k in zip(history, keep, strict=True) if not k]
        summaries = self.summaries if plan.summarize_dropped else {}
        gone = dropped_facts(raw, history, keep) if plan.keep_dropped_facts else []
        for unit in dropped:
            if unit_key(unit) in summaries:
                self.summarized += 1
            elif self.plan.summarize_dropped and unit.kind == "tool":
                self.to_summarize.append(unit)
        for unit, k in zip(history, keep, strict=True):
            if k:
                out.extend(unit.messages)
            elif dropped and unit is dropped[0]:
                out.append(omitted_note(dropped, summaries, gone))
        return out, len(old) - len(kept) + sum(len(u.messages) for u in dropped)


def compress(
    counter: TokenCounter,
    messages: Sequence[ChatMessage],
    plan: CompressionPlan,
    texts: TextCompressor | None = None,
    summaries: Mapping[str, str] | None = None,
) -> tuple[tuple[ChatMessage, ...], CompressionReport]:
    """``messages`` compressed by ``plan``; ``summaries`` are the cheap tier's one-line
    summaries of dropped exchanges known so far, by ``unit_key``."""
    prefix = leading_system(tuple(messages))
    body = list(messages[len(prefix) :])
    # The opening user message states the task: it stays even when the middle goes.
    opening = [body[0]] if body and body[0].role == "user" else []
    originals = body[len(opening) :]
    rest, bases = restated_results(originals)
    start = window_start(rest, plan.keep_last, plan.window_stride)
    work = Compressor(counter, plan, texts, summaries)
    old, dropped = work.old_history(rest[:start], last_user_text(opening))
    window = work.results(rest[start:], last_user_text([*opening, *rest[:start]]))
    shown = work.unpoint([*old, *window], bases, originals, last_user_text(opening))
    # Long text is compressed for the question asked at or before it, never a later one, so
    # its compressed form stays the same from call to call.
    kept: list[ChatMessage] = []
    question = ""
    for msg in [*opening, *shown]:
        if msg.role == "user":
            question = final_paragraph(msg.text())
        kept.append(work.free_text(msg, question))
    before = sum(counter.count_many([m.text() for m in body])) if body else 0
    after = sum(counter.count_many([m.text() for m in kept])) if kept else 0
    report = CompressionReport(
        dropped,
        work.trimmed,
        work.compacted,
        work.compressed,
        before,
        after,
        work.summarized,
        tuple(work.to_summarize),
    )
    return (*prefix, *kept), report
