"""``tierfleet bench compress``: what the compression policy cuts and what it keeps.

tau-bench format: recorded agent sessions replayed call by call (each assistant turn is one
call whose input is every earlier message). Per call: input tokens before/after, split into
the static prefix (system prompt, tool schemas) and the volatile rest; the billed input at
published prices with and without the provider's prefix cache (OpenAI's rule: the longest
prefix shared with the session's previous call, from 1,024 tokens, in steps of 128); the
share of used facts kept (identifiers, numbers and codes of the next assistant turn that
earlier tool outputs held); whether the static prefix is byte-for-byte the original; the
compression latency. The seeds' rolling window (system + last 6 messages) runs beside it.

Tuned defaults are chosen on one half of the tasks (``--split tune``, by a hash of the task
id, so the trials of one task fall on the same side) and reported on the other half
(``--split report``, the default), whose sessions they never saw.

LEval format: per task, each document is compressed for each of its questions; the ratio of
document tokens before/after and the share of reference-answer words (those the document
holds) still in the compressed text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from policies.compression import CompressionPlan, TextCompressor, compress
from policies.facts import content_words, facts_in
from policies.pricing import Price, load_price_table, openai_cached_tokens
from policies.text import words
from policies.tokens import TokenCounter, prompt_tokens
from producers.recorded import TauSession, session_split, tau_bench_sessions
from producers.report import percentile
from queues.step import ChatMessage, leading_system
from workers.ml.tokenizer import BpeCounter

PRICED_MODEL = "gpt-4o"  # the model that produced the recorded sessions
ROLLING_KEEP = 6

Prompt = tuple[ChatMessage, ...]
Compress = Callable[[Prompt], Prompt]


@dataclass(frozen=True)
class CallFigures:
    session: str
    index: int
    static: int
    volatile_before: int
    volatile_after: int
    cached_before: int  # tokens the provider's prefix cache would serve, uncompressed
    cached_after: int
    facts_used: int
    facts_kept: int
    prefix_stable: bool
    ms: float


def cached_tokens(prompt: Prompt, previous: Prompt | None, counter: TokenCounter) -> int:
    if previous is None:
        return 0
    shared = 0
    for old, new in zip(previous, prompt, strict=False):
        if old != new:
            break
        shared += 1
    tokens = prompt_tokens(counter, prompt[:shared]) if shared else 0
    return openai_cached_tokens(tokens)


def byte_stable(prefix: Prompt, prompt: Prompt) -> bool:
    """The compressed prompt opens with the original prefix, serialized byte for byte."""
    sent = [m.model_dump_json() for m in prompt[: len(prefix)]]
    return sent == [m.model_dump_json() for m in prefix]


def used_facts(history: Prompt, answer: ChatMessage) -> set[str]:
    held = set().union(*(facts_in(m.text()) for m in history if m.role == "tool"))
    return facts_in(answer.text()) & held


def rolling_window(prompt: Prompt, keep: int = ROLLING_KEEP) -> Prompt:
    prefix = leading_system(prompt)
    return (*prefix, *prompt[len(prefix) :][-keep:])


def replay_session(
    session: TauSession, squeeze: Compress, counter: TokenCounter
) -> list[CallFigures]:
    out: list[CallFigures] = []
    before_prev: Prompt | None = None
    after_prev: Prompt | None = None
    for index, k in enumerate(session.calls):
        prompt = session.messages[:k]
        started = time.perf_counter()
        squeezed = squeeze(prompt)
        ms = (time.perf_counter() - started) * 1000
        prefix = leading_system(prompt)
        static = prompt_tokens(counter, prefix)
        used = used_facts(prompt, session.messages[k])
        kept_text = "\n".join(m.text() for m in squeezed)
        out.append(
            CallFigures(
                session=session.session_id,
                index=index,
                static=static,
                volatile_before=prompt_tokens(counter, prompt) - static,
                volatile_after=prompt_tokens(counter, squeezed) - static,
                cached_before=cached_tokens(prompt, before_prev, counter),
                cached_after=cached_tokens(squeezed, after_prev, counter),
                facts_used=len(used),
                facts_kept=len(used & facts_in(kept_text)),
                prefix_stable=byte_stable(prefix, squeezed),
                ms=ms,
            )
        )
        before_prev, after_prev = prompt, squeezed
    return out


def billed(price: Price, tokens: int, cached: int) -> float:
    return ((tokens - cached) * price.input_per_mtok + cached * price.cached_input_per_mtok) / 1e6


def _share(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0


def summarize(calls: Sequence[CallFigures], price: Price) -> dict[str, Any]:
    static = sum(c.static for c in calls)
    vol_before = sum(c.volatile_before for c in calls)
    vol_after = sum(c.volatile_after for c in calls)
    before, after = static + vol_before, static + vol_after
    bill = {
        "uncompressed_no_cache": billed(price, before, 0),
        "uncompressed_cached": sum(
            billed(price, c.static + c.volatile_before, c.cached_before) for c in calls
        ),
        "compressed_no_cache": billed(price, after, 0),
        "compressed_cached": sum(
            billed(price, c.static + c.volatile_after, c.cached_after) for c in calls
        ),
    }
    used = sum(c.facts_used for c in calls)
    latencies = [c.ms for c in calls]
    return {
        "calls": len(calls),
        "input_tokens_before": before,
        "input_tokens_after": after,
        "static_prefix_tokens": static,
        "static_prefix_share_before": _share(static, before),
        "volatile_tokens_before": vol_before,
        "volatile_tokens_after": vol_after,
        "volatile_token_reduction": round(1 - _share(vol_after, vol_before), 4),
        "input_token_reduction": round(1 - _share(after, before), 4),
        "cached_share_after": _share(sum(c.cached_after for c in calls), after),
        "billed_input_usd": {k: round(v, 4) for k, v in bill.items()},
        "billed_input_reduction": round(
            1 - _share(bill["compressed_cached"], bill["uncompressed_cached"]), 4
        ),
        "billed_input_reduction_vs_no_cache": round(
            1 - _share(bill["compressed_cached"], bill["uncompressed_no_cache"]), 4
        ),
        "used_facts": used,
        "used_facts_kept": _share(sum(c.facts_kept for c in calls), used),
        "prefix_stable_share": _share(sum(c.prefix_stable for c in calls), len(calls)),
        "p50_ms": round(percentile(latencies, 50), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
    }


def per_session(calls: Sequence[CallFigures], price: Price) -> list[dict[str, Any]]:
    sessions: dict[str, list[CallFigures]] = {}
    for call in calls:
        sessions.setdefault(call.session, []).append(call)
    keys = (
        "calls",
        "volatile_token_reduction",
        "input_token_reduction",
        "used_facts_kept",
        "billed_input_reduction",
        "p99_ms",
    )
    return [
        {"session": name, **{k: v for k, v in summarize(rows, price).items() if k in keys}}
        for name, rows in sessions.items()
    ]


def bench_tau(
    path: Path,
    sessions: int | None,
    plan: CompressionPlan,
    per_call: bool,
    texts: TextCompressor | None = None,
    split: str = "report",
) -> dict[str, Any]:
    counter = BpeCounter()
    price = load_price_table().get(PRICED_MODEL)
    assert price is not None, f"the price table lacks {PRICED_MODEL}"
    data = session_split(tau_bench_sessions(path, sessions), split)

    def ours(prompt: Prompt) -> Prompt:
        return compress(counter, prompt, plan, texts)[0]

    compress(counter, data[0].messages[:2], plan, texts)  # warm the tokenizer
    calls = [c for s in data for c in replay_session(s, ours, counter)]
    rolling = [c for s in data for c in replay_session(s, rolling_window, counter)]
    figures: dict[str, Any] = {
        "format": "tau-bench",
        "workload": str(path),
        "split": split,
        "sessions": len(data),
        "priced_as": f"{PRICED_MODEL} (policies/tables/prices.toml)",
        "plan": {k: sorted(v) if isinstance(v, frozenset) else v for k, v in vars(plan).items()},
        **summarize(calls, price),
        "baseline_rolling_window": summarize(rolling, price),
        "per_session": per_session(calls, price),
    }
    if per_call:
        figures["per_call"] = [c.__dict__ for c in calls]
    return figures


def answer_words(answer: str, document_words: set[str]) -> list[str]:
    return [w for w in content_words(answer) if w in document_words]


def bench_leval(
    folder: Path,
    plan: CompressionPlan,
    texts: TextCompressor | None = None,
    documents: int | None = None,
) -> dict[str, Any]:
    """Per task (one JSONL file), over its first ``documents`` documents (default: all)."""
    # Every document goes through the prompt compressor, however short.
    plan = replace(plan, text_max_tokens=1)
    counter = BpeCounter()
    tasks: dict[str, Any] = {}
    latencies: list[float] = []
    for path in sorted(folder.glob("*.jsonl")):
        before = after = present = kept = 0
        for line in path.read_text().splitlines()[:documents]:
            record = json.loads(line)
            document = record["input"]
            doc_words = set(words(document))
            size = counter.count_many([document])[0]
            for question, answer in zip(record["instructions"], record["outputs"], strict=False):
                started = time.perf_counter()
                prompt, _ = compress(
                    counter,
                    (ChatMessage(role="user", content=f"{document}\n\n{question}"),),
                    plan,
                    texts,
                )
                latencies.append((time.perf_counter() - started) * 1000)
                text = prompt[0].text().removesuffix(question)
                asked = answer_words(answer, doc_words)
                kept_words = set(words(text))
                before += size
                after += counter.count_many([text])[0]
                present += len(asked)
                kept += sum(w in kept_words for w in asked)
        tasks[path.stem] = {
            "ratio": round(before / after, 3) if after else 0.0,
            "answer_tokens_kept": _share(kept, present),
            "answer_tokens": present,
        }
    ratios = [t["ratio"] for t in tasks.values()]
    return {
        "format": "leval",
        "data": str(folder),
        "documents_per_task": documents,
        "text_ratio": plan.text_ratio,
        "tasks": tasks,
        "ratio_min": min(ratios) if ratios else 0.0,
        "answer_tokens_kept": _share(
            sum(t["answer_tokens_kept"] * t["answer_tokens"] for t in tasks.values()),
            sum(t["answer_tokens"] for t in tasks.values()),
        ),
        "p50_ms": round(percentile(latencies, 50), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
    }
