"""What the test server's models say: deterministic text, or JSON that fits a schema."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from workers.providers.simulated import instance_of

_WORDS = (
    "the",
    "reservation",
    "is",
    "confirmed",
    "and",
    "the",
    "passenger",
    "record",
    "now",
    "shows",
    "the",
    "updated",
    "flight",
    "details",
    "with",
    "the",
    "fare",
    "difference",
    "charged",
    "to",
    "the",
    "card",
    "on",
    "file",
    "as",
    "the",
    "policy",
    "requires",
)


def rng_for(*parts: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8]))


# A request for a probability (a judge's call): answered with a number, as a model would.
ASKS_FOR_A_NUMBER = "one number between 0 and 1"


# A request that asks the model to rate itself on a last line (self-reported confidence).
ASKS_FOR_A_RATING = "write 'Confidence: '"


def rated(text: str, unsure: bool) -> str:
    return f"{text}\nConfidence: {0.15 if unsure else 0.9}"


def number_answer(unsure: bool) -> str:
    """A judge's reply: confident, or (a scripted fault) doubtful."""
    return "0.15" if unsure else "0.9"


def text_answer(model: str, prompt: str, words: int) -> str:
    rng = rng_for("text", model, prompt)
    return " ".join(rng.choice(_WORDS) for _ in range(max(1, words)))


def json_answer(model: str, prompt: str, schema: dict[str, Any]) -> str:
    return json.dumps(instance_of(schema, rng_for("json", model, prompt)))


def malformed(text: str) -> str:
    """Cut short: what a model that loses the thread returns for a JSON request."""
    return text[: max(1, len(text) // 2)]
