"""How prompts are counted. The counter itself is an adapter (a real BPE tokenizer); policies
only see this Protocol."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Protocol

from queues.step import ChatMessage

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


def non_text_parts(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Content parts that are not text: images, audio, files."""
    return [
        part
        for m in messages
        if isinstance(m.content, list)
        for part in m.content
        if part.get("type", "text") != "text"
    ]


IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})


def reservation_tokens(
    counter: TokenCounter,
    messages: Sequence[ChatMessage],
    tools: Sequence[dict[str, Any]],
    *,
    factor: float = 1.0,
    image_tokens: int = 0,
) -> int:
    """A conservative count of a call's input for its budget reservation: text and tool
    schemas by BPE, each image at the most the provider bills one as, any other part kind
    (audio, files) by the BPE count of the whole part, data included, and all of it times
    the model family's ``factor`` (a tokenizer that splits finer than ours)."""
    parts = non_text_parts(messages)
    images = sum(1 for p in parts if p.get("type") in IMAGE_PART_TYPES)
    others = [json.dumps(p) for p in parts if p.get("type") not in IMAGE_PART_TYPES]
    counted = request_tokens(counter, messages, tools) + sum(counter.count_many(others))
    return math.ceil(counted * factor) + images * image_tokens
