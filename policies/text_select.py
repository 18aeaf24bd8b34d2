"""The fast default prompt compressor: query-aware sentence selection, no model needed.

Long free text (a pasted document, a long report) is split into sentences; each is scored
against the request with BM25 (term weights from the text itself), smoothed with its
neighbours so an answer's context comes along; the best are kept, in their original order,
until the token budget is spent. A ``[...]`` marks each gap so the model knows text is gone.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable

from policies.facts import content_words, facts_in

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")
K1, B = 1.2, 0.75  # the usual BM25 constants
NEIGHBOUR_SHARE = 0.5  # of the better neighbour's score a sentence inherits
GAP = "[...]"


def sentences(text: str) -> list[str]:
    return [s for s in SENTENCE_END.split(text) if s.strip()]


def bm25_scores(chunks: list[list[str]], query: set[str]) -> list[float]:
    n = len(chunks)
    df = Counter(w for chunk in chunks for w in set(chunk))
    avg = sum(len(c) for c in chunks) / max(1, n)
    scores = []
    for chunk in chunks:
        tf = Counter(chunk)
        norm = K1 * (1 - B + B * len(chunk) / max(avg, 1e-9))
        scores.append(
            sum(
                math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5)) * tf[w] * (K1 + 1) / (tf[w] + norm)
                for w in query
                if w in tf
            )
        )
    return scores


def select_sentences(
    text: str, query: str, budget: int, count: Callable[[list[str]], list[int]]
) -> str:
    """``text`` cut to at most ``budget`` tokens, keeping what best answers ``query``."""
    parts = sentences(text)
    sizes = count(parts)
    if sum(sizes) <= budget:
        return text
    words = [content_words(p) for p in parts]
    raw = bm25_scores(words, set(content_words(query)))
    q_facts = facts_in(query)
    for i, part in enumerate(parts):
        if q_facts & facts_in(part):
            raw[i] += max(raw) + 1  # a sentence naming the request's ids or numbers first
    smooth = [
        s + NEIGHBOUR_SHARE * max(raw[i - 1] if i else 0.0, raw[i + 1] if i + 1 < len(raw) else 0.0)
        for i, s in enumerate(raw)
    ]
    kept: set[int] = set()
    used = 0
    for i in sorted(range(len(parts)), key=lambda i: (-smooth[i], i)):
        if used + sizes[i] + 1 <= budget:
            kept.add(i)
            used += sizes[i] + 1
    out: list[str] = []
    for i, part in enumerate(parts):
        if i in kept:
            out.append(part)
        elif not out or out[-1] != GAP:
            out.append(GAP)
    return "\n".join(out)
