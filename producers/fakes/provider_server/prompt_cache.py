"""Prompt-cache simulation at block granularity (a tool schema, a system block, a message).

Each provider caches a prompt's prefix by hashing it; a later prompt that starts with the
same bytes reads the prefix back at the cached price. Working on whole blocks rather than
128-token chunks is the one simplification: agent histories only ever append blocks.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from policies.pricing import OPENAI_CACHE_MIN_TOKENS, openai_cached_tokens

ANTHROPIC_MIN_TOKENS = 1024
ANTHROPIC_LOOKBACK_BLOCKS = 20


@dataclass(frozen=True)
class Block:
    text: str  # the block's canonical serialisation
    tokens: int
    breakpoint: bool = False  # Anthropic cache_control on this block


def _prefix_hashes(blocks: Sequence[Block]) -> list[str]:
    running = hashlib.sha256()
    out = []
    for block in blocks:
        running.update(block.text.encode())
        running.update(b"\x00")
        out.append(running.copy().hexdigest())
    return out


def _cumulative(blocks: Sequence[Block]) -> list[int]:
    total, out = 0, []
    for block in blocks:
        total += block.tokens
        out.append(total)
    return out


@dataclass
class PromptCache:
    """The cache of one provider account, per model."""

    _seen: dict[str, set[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def openai(self, model: str, blocks: Sequence[Block]) -> int:
        """Cached tokens of this call: the longest seen prefix, in 128-token steps from 1024.
        Every prefix of 1024+ tokens is cached for the next call."""
        hashes, sums = _prefix_hashes(blocks), _cumulative(blocks)
        with self._lock:
            seen = self._seen.setdefault(model, set())
            hit = max((sums[i] for i, h in enumerate(hashes) if h in seen), default=0)
            cacheable = (
                h for h, n in zip(hashes, sums, strict=True) if n >= OPENAI_CACHE_MIN_TOKENS
            )
            seen.update(cacheable)
        return openai_cached_tokens(hit)

    def anthropic(self, model: str, blocks: Sequence[Block]) -> tuple[int, int]:
        """(cache read, cache write) tokens. Reads: the longest cached prefix ending within
        20 blocks before a breakpoint. Writes: from there to the last breakpoint, when that
        prefix is long enough to cache."""
        marks = [i for i, b in enumerate(blocks) if b.breakpoint]
        if not marks:
            return 0, 0
        hashes, sums = _prefix_hashes(blocks), _cumulative(blocks)
        candidates = {
            i for m in marks for i in range(max(0, m - ANTHROPIC_LOOKBACK_BLOCKS + 1), m + 1)
        }
        with self._lock:
            seen = self._seen.setdefault(model, set())
            hits = [i for i in candidates if hashes[i] in seen]
            read = sums[max(hits)] if hits else 0
            last = marks[-1]
            write = 0
            if sums[last] >= ANTHROPIC_MIN_TOKENS and sums[last] > read:
                write = sums[last] - read
                seen.update(hashes[m] for m in marks if sums[m] >= ANTHROPIC_MIN_TOKENS)
        return read, write
