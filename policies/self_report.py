"""Self-reported confidence (a tier with ``confidence = "self_report"``): the model is asked
to end its answer with a line ``Confidence: <0..1>``; the line is read and taken off the
answer before anything else sees it. Weaker than log-probabilities or a judge (a model's
word on itself), but free, and available from every provider."""

from __future__ import annotations

import re

from queues.step import ChatMessage

NOTE = (
    "After your answer, on a last line of its own, write 'Confidence: ' and the probability "
    "(a number between 0 and 1) that your answer is correct and complete."
)
_LINE = re.compile(r"\n?[ \t]*confidence:\s*(\d*\.?\d+)\s*(%?)\s*$", re.IGNORECASE)


def ask_for_confidence(messages: tuple[ChatMessage, ...]) -> tuple[ChatMessage, ...]:
    """The request with the note last (the static prefix stays as it was)."""
    return (*messages, ChatMessage(role="system", content=NOTE))


def read_confidence(text: str) -> tuple[str, float | None]:
    """(the answer without its confidence line, the confidence, or None when there is none
    or it is not a probability)."""
    match = _LINE.search(text)
    if match is None:
        return text, None
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    answer = text[: match.start()].rstrip()
    return answer, value if 0.0 <= value <= 1.0 else None
