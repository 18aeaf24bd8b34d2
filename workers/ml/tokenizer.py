"""Token counting with a real BPE tokenizer that works offline (toktok: cl100k/o200k built in,
counts identical to tiktoken)."""

from __future__ import annotations

from collections.abc import Sequence

import toktok


class BpeCounter:
    def __init__(self, encoding: str = "o200k_base") -> None:
        self.encoding = encoding

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return list(toktok.batch_count(list(texts), self.encoding))

    def head(self, text: str, max_tokens: int) -> str:
        kept, _ = toktok.truncate(text, max_tokens, self.encoding)
        return str(kept)

    def tail(self, text: str, max_tokens: int) -> str:
        """The longest suffix within ``max_tokens`` (binary search over character offsets)."""
        if max_tokens <= 0:
            return ""
        lo, hi = 0, len(text)  # find the smallest start whose suffix fits
        while lo < hi:
            mid = (lo + hi) // 2
            if self.count_many([text[mid:]])[0] <= max_tokens:
                hi = mid
            else:
                lo = mid + 1
        return text[lo:]
