"""The test server's own bill, at the prices the providers publish (kept here, apart from
the fleet's price table, so that reconciling the two checks the fleet's arithmetic)."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

# USD per million tokens: input, cached input read, cache write, output. Batch APIs: half.
PUBLISHED: dict[str, tuple[float, float, float, float]] = {
    "gpt-4o": (2.50, 1.25, 2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.15, 0.60),
    "gpt-4.1": (2.00, 0.50, 2.00, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.10, 0.40),
    "claude-3-5-haiku-20241022": (0.80, 0.08, 1.00, 4.00),
    "claude-haiku-4-5": (1.00, 0.10, 1.25, 5.00),
    "claude-sonnet-4-5": (3.00, 0.30, 3.75, 15.00),
    "claude-opus-4-1": (15.00, 1.50, 18.75, 75.00),
}
BATCH_FACTOR = 0.5


@dataclass
class ModelBill:
    calls: int = 0
    batch_calls: int = 0
    input_tokens: int = 0  # all input, cache reads and writes included
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0


@dataclass
class Bill:
    models: dict[str, ModelBill] = field(default_factory=lambda: defaultdict(ModelBill))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def charge(
        self, model: str, *, fresh: int, cached: int, written: int, output: int, batch: bool
    ) -> None:
        price_in, price_cached, price_write, price_out = PUBLISHED.get(model, (0, 0, 0, 0))
        usd = (
            fresh * price_in + cached * price_cached + written * price_write + output * price_out
        ) / 1e6
        if batch:
            usd *= BATCH_FACTOR
        with self._lock:
            line = self.models[model]
            line.calls += 1
            line.batch_calls += int(batch)
            line.input_tokens += fresh + cached + written
            line.cached_tokens += cached
            line.cache_write_tokens += written
            line.output_tokens += output
            line.usd += usd

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            models = {name: asdict(line) for name, line in self.models.items()}
        return {"models": models, "total_usd": sum(m["usd"] for m in models.values())}

    def reset(self) -> None:
        with self._lock:
            self.models.clear()
