"""The simulated provider: deterministic model behaviour for demos, tests and benchmarks.

Every number it produces is labelled simulated. The rules, in full:
- each model has a ``capability`` in [0, 1] (the tier table) and each step a ``difficulty``
  (``labels["difficulty"]`` from the workload; else derived from a hash of the prompt);
- the answer is acceptable iff capability >= difficulty (reported as ``correct``, which only
  scorers read);
- the reported confidence is informative but noisy:
  ``clip(0.5 + 1.25 * (capability - difficulty) + N(0, 0.15))``, the noise seeded by step
  and model, so the cascade sees what a real system would see, never the label;
- a wrong answer to a step with a response schema is malformed JSON half of the time, and
  schema-valid but wrong otherwise;
- input tokens are the prompt counted with the real tokenizer, output tokens the generated
  text counted the same way, never more than ``max_output_tokens``;
- each call (one micro-batch) sleeps ``simulated_latency_ms``;
- with ``labels["bill_factor"]`` the call states its bill: the table's price of its usage
  times that factor (a provider whose bill departs from the price table: budget tests);
- a cache audit's judge (policies/hit_audit.py) calls two requests the same when they use
  the same words, in any order, case and punctuation aside: it answers 1, else 0;
- a step labelled ``kill_worker`` kills the process that calls for it (SIGKILL), as a step
  that crashes its worker would: the chaos run's and the redelivery tests' poison step.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import time
from collections.abc import Sequence
from typing import Any

from policies.hit_audit import audited_pair
from policies.text import words
from policies.tokens import TokenCounter, request_tokens
from workers.errors import PermanentError
from workers.ports import Completion, CompletionRequest

NOISE_SD = 0.15
DEFAULT_OUTPUT_TOKENS = 80
_WORDS = [
    "the",
    "flight",
    "booking",
    "policy",
    "allows",
    "changes",
    "within",
    "twenty",
    "four",
    "hours",
    "of",
    "purchase",
    "and",
    "the",
    "agent",
    "confirms",
    "the",
    "reservation",
    "details",
    "before",
    "updating",
    "the",
    "passenger",
    "record",
    "with",
    "care",
]


def _rng(*parts: str) -> random.Random:
    seed = int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "big")
    return random.Random(seed)


def difficulty_of(request: CompletionRequest) -> float:
    label = request.labels.get("difficulty")
    if label is not None:
        return float(label)
    prompt = "\n".join(m.text() for m in request.messages)
    return _rng("difficulty", prompt).random()


def confidence_of(capability: float, difficulty: float, step_id: str, model: str) -> float:
    noise = _rng("confidence", step_id, model).gauss(0.0, NOISE_SD)
    return min(1.0, max(0.0, 0.5 + 1.25 * (capability - difficulty) + noise))


def instance_of(schema: dict[str, Any], rng: random.Random) -> Any:
    """A small JSON value that fits ``schema`` (the subset agents use for tool arguments)."""
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        props = schema.get("properties", {})
        return {name: instance_of(sub, rng) for name, sub in props.items()}
    if kind == "array":
        return [instance_of(schema.get("items", {"type": "string"}), rng) for _ in range(2)]
    if kind == "integer":
        return rng.randint(int(schema.get("minimum", 0)), int(schema.get("maximum", 100)))
    if kind == "number":
        return round(
            rng.uniform(float(schema.get("minimum", 0)), float(schema.get("maximum", 1))), 3
        )
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return " ".join(rng.choice(_WORDS) for _ in range(3))


class SimulatedProvider:
    name = "simulated"
    notes_tries = False

    def __init__(self, counter: TokenCounter, latency_ms: float = 0.0) -> None:
        self.counter = counter
        self.latency_ms = latency_ms

    def _answer(self, request: CompletionRequest, correct: bool, rng: random.Random) -> str:
        schema = request.response_schema
        if schema is not None:
            if not correct and rng.random() < 0.5:
                return json.dumps(instance_of(schema, rng))[:-1]  # malformed: cut short
            return json.dumps(instance_of(schema, rng))
        target = int(request.labels.get("output_tokens", DEFAULT_OUTPUT_TOKENS))
        words = " ".join(rng.choice(_WORDS) for _ in range(max(1, target)))
        return self.counter.head(words, min(target, request.max_output_tokens))

    def _audit_reply(self, request: CompletionRequest) -> str | None:
        if request.task_kind != "cache_audit" or not request.messages:
            return None
        pair = audited_pair(request.messages[-1].text())
        if pair is None:
            return None
        return "1" if set(words(pair[0])) == set(words(pair[1])) else "0"

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion | Exception]:
        if any(r.labels.get("kill_worker") for r in requests):
            os.kill(os.getpid(), signal.SIGKILL)
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        out: list[Completion | Exception] = []
        for request in requests:
            capability = request.model.capability
            if capability is None:
                raise PermanentError(f"model {request.model.name} has no simulated capability")
            difficulty = difficulty_of(request)
            correct = capability >= difficulty
            rng = _rng("answer", request.step_id, request.model.name)
            audit = self._audit_reply(request)
            text = audit if audit is not None else self._answer(request, correct, rng)
            tokens_out = min(self.counter.count_many([text])[0], request.max_output_tokens)
            tokens_in = request_tokens(self.counter, request.messages, request.tools)
            factor = request.labels.get("bill_factor")
            billed = (
                request.model.cost(tokens_in, tokens_out) * float(factor)
                if factor is not None
                else None
            )
            out.append(
                Completion(
                    text=text,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    billed_usd=billed,
                    confidence=confidence_of(
                        capability, difficulty, request.step_id, request.model.name
                    ),
                    correct=correct,
                    simulated=True,
                )
            )
        return out
