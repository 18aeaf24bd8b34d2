"""A model a tier's worker runs itself, as the tier table describes it: where the model is,
which engine runs it, what its machine costs by the hour, and the engine's options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ENGINES = ("cpu", "vllm")  # the engines a local model may run on (workers/engines)


@dataclass(frozen=True)
class LocalModel:
    """A model a tier's worker runs itself. It is billed by the hour of the machine it runs
    on: each call pays its share of the engine's time (the per-token price in the table is
    only the budget reservation's estimate)."""

    path: str  # a model folder, a .gguf file, or "smollm2" (the shipped SmolLM2-135M)
    hourly_usd: float
    engine: str = "cpu"
    context_tokens: int = 0  # 0: the model's own (max_position_embeddings)
    threads: int = 0  # CPU threads; 0: every core
    # Prompt prefixes whose KV cache is kept (agents resend their system prompt and history
    # each step): the CPU engine keeps up to this many tokens of them; 0 turns prefix
    # caching off (vLLM sizes its own cache in GPU memory).
    prefix_cache_tokens: int = 16384
    # vLLM (GPU): the share of GPU memory it may take, the weights' dtype, and speculative
    # decoding: "" (off), "ngram" (prompt lookup: no draft model; suits agents that echo
    # tool output) or a draft model's path, proposing this many tokens at a time.
    gpu_memory_fraction: float = 0.9
    dtype: str = "auto"
    speculative: str = ""
    speculative_tokens: int = 4


def parse_local(name: str, spec: dict[str, Any]) -> LocalModel | None:
    """The local part of a tier table model entry (None for a model behind an API)."""
    if spec.get("provider") != "local":
        return None
    try:
        local = LocalModel(
            path=str(spec["path"]),
            hourly_usd=float(spec["hourly_usd"]),
            engine=str(spec.get("engine", "cpu")),
            context_tokens=int(spec.get("context_tokens", 0)),
            threads=int(spec.get("threads", 0)),
            prefix_cache_tokens=int(spec.get("prefix_cache_tokens", 16384)),
            gpu_memory_fraction=float(spec.get("gpu_memory_fraction", 0.9)),
            dtype=str(spec.get("dtype", "auto")),
            speculative=str(spec.get("speculative", "")),
            speculative_tokens=int(spec.get("speculative_tokens", 4)),
        )
    except KeyError as exc:
        raise ValueError(f"local model {name!r} needs {exc.args[0]!r}") from exc
    if local.engine not in ENGINES:
        raise ValueError(f"local model {name!r}: engine {local.engine!r}, not one of {ENGINES}")
    if not 0.0 < local.gpu_memory_fraction <= 1.0 or local.speculative_tokens < 1:
        raise ValueError(f"local model {name!r}: gpu_memory_fraction in (0, 1], tokens >= 1")
    counts = (local.hourly_usd, local.context_tokens, local.threads, local.prefix_cache_tokens)
    if min(counts) < 0:
        raise ValueError(
            f"local model {name!r}: hourly_usd, context, threads and prefix cache are >= 0"
        )
    return local
