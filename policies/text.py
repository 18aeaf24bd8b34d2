"""The text helpers the policies share, one name each: what a step's user said, the final
paragraph of a message, its words, the choice letter of a multiple-choice answer, and a stable
fraction of a string (for a sample or a split that a redelivery or a rerun agrees with)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from queues.step import ChatMessage

_WORD = re.compile(r"[a-z0-9]+")
_CHOICE = re.compile(r"^\W*([A-E])\b|answer is\W*([A-E])\b", re.IGNORECASE)


def choice_letter(answer: str) -> str | None:
    """The one choice letter an answer gives ("B", "b)", "The answer is C"), upper-cased."""
    match = _CHOICE.search(answer.strip())
    return (match.group(1) or match.group(2)).upper() if match else None


def words(text: str) -> list[str]:
    """The lower-cased alphanumeric runs of a text: the word unit of the cache verifier,
    the fact checks and the compression benchmark."""
    return _WORD.findall(text.lower())


def last_user_text(messages: Sequence[ChatMessage]) -> str:
    """The newest user turn's text ("" when there is none)."""
    return next((m.text() for m in reversed(messages) if m.role == "user"), "")


def user_text(messages: Sequence[ChatMessage]) -> str:
    """Every user turn's text, in order: what the learned policies read of a step (they
    were trained on the prompts of recorded outcomes)."""
    return "\n".join(m.text() for m in messages if m.role == "user")


def final_paragraph(text: str, limit: int = 2000) -> str:
    """What a message asks: its final paragraph (after any pasted document), at most
    ``limit`` characters of its end."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    return paragraphs[-1][-limit:] if paragraphs else ""


def stable_fraction(text: str) -> float:
    """A number in [0, 1] fixed by ``text`` alone (the first 32 bits of its SHA-256)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
