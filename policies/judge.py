"""The judge acceptance policy, for providers that report no log-probabilities: an answer
that passes a tier's checks is put to a cheap judge model, which says how likely the answer
is right and complete for the request; the tier accepts it when that clears its threshold.
The judge's call is a call of the step, on its bill and its budget."""

from __future__ import annotations

import re

from policies.text import user_text
from queues.step import ChatMessage

JUDGE_MAX_TOKENS = 8  # a number is all the judge writes
MAX_SHOWN = 6000  # characters of the request and of the answer shown to the judge

JUDGE_SYSTEM = (
    "You check another assistant's answer. Read the request and the answer, then reply with "
    "one number between 0 and 1: the probability that the answer is correct and complete "
    "for the request. Reply with the number only."
)


def judge_messages(request: tuple[ChatMessage, ...], answer: str) -> tuple[ChatMessage, ...]:
    """The judge's call: the request's user text and the answer under judgment."""
    asked = user_text(request)[-MAX_SHOWN:]
    shown = answer[:MAX_SHOWN]
    return (
        ChatMessage(role="system", content=JUDGE_SYSTEM),
        ChatMessage(role="user", content=f"Request:\n{asked}\n\nAnswer:\n{shown}\n\nProbability:"),
    )


_NUMBER = re.compile(r"(?<![\d.])(\d*\.\d+|\d+)(\s*%)?")


def judge_score(text: str) -> float | None:
    """The judge's probability: the first number in its reply (a percentage divided by
    100), or None when it gave no number in [0, 1]."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    return value if 0.0 <= value <= 1.0 else None
