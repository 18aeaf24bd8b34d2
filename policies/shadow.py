"""Shadow evaluation: a share of accepted cheaper answers is also put to the frontier model,
and whether the two agree is recorded. Where no labels exist, agreement with the frontier is
the quality signal that can be watched in production.
"""

from __future__ import annotations

import json
import re
from typing import Any

from policies.text import choice_letter, stable_fraction

_WORD = re.compile(r"\w+")


def shadowed(step_id: str, fraction: float) -> bool:
    """Whether this step is shadowed: a stable hash of its id, so a redelivery agrees."""
    if fraction <= 0:
        return False
    return stable_fraction(step_id) < fraction


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def agree(a: str, b: str, task_kind: str) -> bool:
    """Whether two answers say the same: the same choice letter for multiple choice, equal
    JSON when both parse, else at least 80% shared words (Jaccard)."""
    if task_kind == "multiple_choice":
        return choice_letter(a) is not None and choice_letter(a) == choice_letter(b)
    parsed_a, parsed_b = _json(a), _json(b)
    if parsed_a is not None and parsed_b is not None:
        return bool(parsed_a == parsed_b)
    words_a, words_b = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not words_a and not words_b:
        return True
    return len(words_a & words_b) / len(words_a | words_b) >= 0.8
