"""How prompts are counted. The counter itself is an adapter (a real BPE tokenizer); policies
only see this Protocol."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from queues.messages import ChatMessage

# OpenAI's chat format adds a few tokens per message and for priming the reply.
PER_MESSAGE_OVERHEAD = 3
REPLY_PRIMING = 3


class TokenCounter(Protocol):
    def count_many(self, texts: Sequence[str]) -> list[int]: ...

    def head(self, text: str, max_tokens: int) -> str: ...

    def tail(self, text: str, max_tokens: int) -> str: ...


def prompt_tokens(counter: TokenCounter, messages: Sequence[ChatMessage]) -> int:
    counts = counter.count_many([m.text() for m in messages])
    return sum(counts) + PER_MESSAGE_OVERHEAD * len(messages) + REPLY_PRIMING


def request_tokens(
    counter: TokenCounter, messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]]
) -> int:
    """Input tokens of a call: the prompt plus its tool schemas."""
    return prompt_tokens(counter, messages) + sum(
        counter.count_many([json.dumps(t) for t in tools])
    )
