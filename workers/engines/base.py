"""What a local tier's worker asks of the model it runs: one call per micro-batch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class EngineRequest:
    """One prompt of a micro-batch, as chat messages (``{"role", "content"}``)."""

    messages: tuple[dict[str, Any], ...]
    max_new_tokens: int


@dataclass(frozen=True)
class Generation:
    """One answer: its tokens, each generated token's log-probability, and why it ended."""

    text: str
    tokens_in: int
    tokens_out: int
    logprobs: tuple[float, ...]
    finish_reason: str  # "stop" (the model ended it) or "length" (max_new_tokens)
    tokens_cached: int = 0  # of tokens_in, read from the engine's prefix cache

    @property
    def confidence(self) -> float | None:
        """The geometric mean of the tokens' probabilities (None for an empty answer): the
        cascade judges it against the tier's accept_min_confidence."""
        if not self.logprobs:
            return None
        return math.exp(sum(self.logprobs) / len(self.logprobs))


@dataclass(frozen=True)
class BatchRun:
    """A micro-batch's answers and how long the engine took for all of them."""

    generations: list[Generation]
    engine_s: float

    def engine_shares(self) -> list[float]:
        """Each answer's share of the engine's time, in proportion to its tokens (what a
        local answer is billed by)."""
        tokens = [g.tokens_in + g.tokens_out for g in self.generations]
        total = sum(tokens) or 1
        return [self.engine_s * n / total for n in tokens]


class Engine(Protocol):
    """A model loaded once per worker process. ``generate`` runs a whole micro-batch in
    one call; ``context_tokens`` is the most a prompt and its answer may hold."""

    name: str
    context_tokens: int

    def generate(self, requests: Sequence[EngineRequest]) -> BatchRun: ...

    def count_prompt(self, messages: Sequence[dict[str, Any]]) -> int:
        """The prompt's tokens as this model sees them (its own tokenizer and template)."""
        ...

    def forget_prefixes(self) -> None:
        """Drop every cached prompt prefix (the next call computes its whole prompt)."""
        ...
