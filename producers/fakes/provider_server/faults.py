"""Scripted faults: rules posted to ``/_faults`` that a matching request triggers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fault:
    model: str | None = None  # matches when equal (None: any model)
    contains: str | None = None  # matches when the prompt text contains it
    status: int | None = None  # answer with this HTTP error (batch items: an errored result)
    retry_after: float | None = None  # with status 429: the Retry-After header
    delay_s: float = 0.0  # answer this late (a client timeout below it sees no answer)
    malformed: bool = False  # answer text that is not valid JSON
    expire: bool = False  # batch items: the item expires unanswered
    times: int = 1  # how many matching requests it hits; -1 = every one

    def matches(self, model: str, prompt: str) -> bool:
        if self.times == 0:
            return False
        if self.model is not None and self.model != model:
            return False
        return self.contains is None or self.contains in prompt


@dataclass
class Faults:
    rules: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, rules: list[dict[str, Any]]) -> None:
        with self._lock:
            self.rules = [Fault(**rule) for rule in rules]

    def take(self, model: str, prompt: str) -> Fault | None:
        """The first rule this request matches, used up by one."""
        with self._lock:
            for rule in self.rules:
                if rule.matches(model, prompt):
                    if rule.times > 0:
                        rule.times -= 1
                    return rule
        return None
