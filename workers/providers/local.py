"""The ``local`` provider: a model the tier's worker runs itself (workers/engines). A
micro-batch is one engine call; each answer carries the geometric mean of its tokens'
probabilities as its confidence, and its share of the engine's time as its bill (the
model's hourly price; the table's per-token price only sizes the budget reservation)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policies.local_models import LocalModel
from queues.step import ChatMessage
from workers.engines.base import Engine, EngineRequest
from workers.errors import PermanentError
from workers.ports import Completion, CompletionRequest

ROLES = {"system", "user", "assistant"}


def chat_of(messages: Sequence[ChatMessage]) -> tuple[dict[str, Any], ...]:
    """Messages as a small model's chat template takes them: text only, tool results told
    as user turns, tool calls as the assistant's text."""
    out = []
    for m in messages:
        text = m.text()
        if m.tool_calls:
            calls = "; ".join(f"{c.function.name}({c.function.arguments})" for c in m.tool_calls)
            text = f"{text}\n[called {calls}]".strip()
        role = m.role if m.role in ROLES else "user"
        if m.role == "tool":
            text = f"[tool result]\n{text}"
        out.append({"role": role, "content": text})
    return tuple(out)


class LocalProvider:
    name = "local"
    notes_tries = False  # nothing leaves the process: nothing can be billed unseen

    def __init__(self, engine: Engine, hourly_usd: float) -> None:
        self.engine = engine
        self.hourly_usd = hourly_usd

    @property
    def context_tokens(self) -> int:
        """The most a prompt and its answer may hold (inference escalates longer ones)."""
        return self.engine.context_tokens

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion | Exception]:
        run = self.engine.generate(
            [EngineRequest(chat_of(r.messages), r.max_output_tokens) for r in requests]
        )
        if len(run.generations) != len(requests):
            raise PermanentError(f"the engine gave {len(run.generations)} of {len(requests)}")
        answers: list[Completion | Exception] = []
        for g, engine_s in zip(run.generations, run.engine_shares(), strict=True):
            answers.append(
                Completion(
                    text=g.text,
                    tokens_in=g.tokens_in,
                    tokens_out=g.tokens_out,
                    tokens_cached=g.tokens_cached,
                    confidence=g.confidence,
                    finish=g.finish_reason,
                    billed_usd=self.hourly_usd * engine_s / 3600,
                    engine_s=engine_s,
                )
            )
        return answers


def build_local(model: LocalModel, cache_dir: Path) -> LocalProvider:
    """The engine the model names, loaded now (once per worker process)."""
    try:
        if model.engine == "vllm":
            from workers.engines.vllm_engine import VllmEngine

            engine: Engine = VllmEngine.load(model, cache_dir)
        else:
            from workers.engines.transformers_engine import TransformersEngine

            engine = TransformersEngine.load(
                model.path,
                cache_dir,
                threads=model.threads or None,
                context=model.context_tokens,
                prefix_cache_tokens=model.prefix_cache_tokens,
            )
    except ImportError as exc:
        extra = "local-gpu" if model.engine == "vllm" else "local-cpu"
        raise PermanentError(
            f"the local model's {model.engine} engine needs {exc.name}: "
            f"pip install 'tierfleet[{extra}]'"
            + (" (`make install-local-cpu`)" if extra == "local-cpu" else "")
        ) from exc
    return LocalProvider(engine, model.hourly_usd)
