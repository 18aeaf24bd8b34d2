"""The fast default prompt compressor: query-aware sentence selection, no model needed.

Long free text (a pasted document, a long report) is split into sentences. Each is worth
its relevance to the request (BM25, term weights from the text itself, smoothed with its
neighbours so an answer's context comes along) plus the content words it adds that the
kept sentences do not yet cover (weighted by how often the text uses them, more for the
request's words): the coverage term keeps a summary-style question ("what was said about
X") from getting ten sentences that say the same thing. Sentences are taken greedily by
worth per token, gaps included, and kept in their original order. A ``[...]`` marks each
gap so the model knows text is gone.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Callable

from policies.facts import content_words, facts_in

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])|\n+")
K1, B = 1.2, 0.75  # the usual BM25 constants
NEIGHBOUR_SHARE = 0.5  # of the better neighbour's score a sentence inherits
COVERAGE = 2.0  # the weight of new content words against relevance (both scaled to 0..1)
QUERY_WORD_WEIGHT = 3.0  # a word of the request counts this much more when covered
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
    asked = set(content_words(query))
    relevance = _relevance(parts, words, asked, query)
    often = Counter(w for ws in words for w in ws)
    weight = {
        w: math.log(1 + n) * (QUERY_WORD_WEIGHT if w in asked else 1.0) for w, n in often.items()
    }
    vocab = [set(ws) for ws in words]
    top_relevance = max(relevance) or 1.0
    top_cover = max(sum(weight[w] for w in v) for v in vocab) or 1.0
    gap = count([GAP])[0] + 1
    kept: set[int] = set()
    covered: set[str] = set()

    def cost(i: int) -> int:
        """Tokens that keeping sentence ``i`` adds, the gap marks it opens or closes included."""
        left = i > 0 and i - 1 not in kept
        right = i + 1 < len(parts) and i + 1 not in kept
        return sizes[i] + 1 + gap * (left + right - 1)

    def worth(i: int) -> float:
        new = vocab[i] - covered
        cover = sum(weight[w] for w in new) / top_cover
        # Relevance fades with the share of the sentence already said by kept ones.
        fresh = len(new) / len(vocab[i]) if vocab[i] else 0.0
        return (fresh * relevance[i] / top_relevance + COVERAGE * cover) / (sizes[i] + 1)

    # Lazy greedy: a sentence's worth only falls as coverage grows, so a popped entry whose
    # recomputed worth still beats the next one is the best choice.
    heap = [(-worth(i), i) for i in range(len(parts))]
    heapq.heapify(heap)
    used = gap  # room for a closing gap mark
    while heap:
        _, i = heapq.heappop(heap)
        if used + cost(i) > budget:
            continue
        now = worth(i)
        if heap and now < -heap[0][0]:
            heapq.heappush(heap, (-now, i))
            continue
        used += cost(i)
        kept.add(i)
        covered |= vocab[i]
    out: list[str] = []
    for i, part in enumerate(parts):
        if i in kept:
            out.append(part)
        elif not out or out[-1] != GAP:
            out.append(GAP)
    return "\n".join(out)


def _relevance(
    parts: list[str], words: list[list[str]], asked: set[str], query: str
) -> list[float]:
    """BM25 against the request, a sentence naming its ids or numbers first, smoothed with
    the better neighbour."""
    raw = bm25_scores(words, asked)
    q_facts = facts_in(query)
    top = max(raw)
    for i, part in enumerate(parts):
        # The substring test first: parsing every sentence for facts costs more than BM25.
        if any(f in part for f in q_facts) and q_facts & facts_in(part):
            raw[i] += top + 1
    return [
        s + NEIGHBOUR_SHARE * max(raw[i - 1] if i else 0.0, raw[i + 1] if i + 1 < len(raw) else 0.0)
        for i, s in enumerate(raw)
    ]
