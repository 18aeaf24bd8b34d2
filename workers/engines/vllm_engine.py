"""The GPU engine: vLLM's in-process ``LLM`` inside the tier's inference worker. A
micro-batch is one ``chat`` call (vLLM schedules its requests together); automatic prefix
caching is on unless the table's prefix_cache_tokens is 0, so a session's later steps reuse
its earlier prompt's KV cache; speculative decoding is the tier table's choice (n-gram
prompt lookup, or a draft model).

CUDA does not survive a fork: a vLLM worker runs ``--pool solo`` (or threads) and builds the
engine after start-up, and vLLM's own engine processes are spawned."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from policies.local_models import LocalModel
from workers.engines.base import BatchRun, EngineRequest, Generation
from workers.engines.transformers_engine import model_folder


def speculative_config(model: LocalModel) -> dict[str, Any] | None:
    if not model.speculative:
        return None
    if model.speculative == "ngram":
        return {
            "method": "ngram",
            "num_speculative_tokens": model.speculative_tokens,
            "prompt_lookup_max": 4,
        }
    return {"model": model.speculative, "num_speculative_tokens": model.speculative_tokens}


def llm_options(model: LocalModel, folder: Path) -> dict[str, Any]:
    """The ``vllm.LLM`` arguments the tier table's entry asks for."""
    options: dict[str, Any] = {
        "model": str(folder),
        "enable_prefix_caching": model.prefix_cache_tokens > 0,
        "gpu_memory_utilization": model.gpu_memory_fraction,
        "dtype": model.dtype,
    }
    if model.context_tokens:
        options["max_model_len"] = model.context_tokens
    if (spec := speculative_config(model)) is not None:
        options["speculative_config"] = spec
    return options


class VllmEngine:
    """``llm`` is a ``vllm.LLM``, ``sampling`` its ``SamplingParams`` (given, so that the
    engine runs against a stand-in for vLLM where no GPU is)."""

    def __init__(
        self, name: str, llm: Any, context_tokens: int, sampling: Callable[..., Any]
    ) -> None:
        self.name, self.llm, self.context_tokens = name, llm, context_tokens
        self.sampling = sampling

    @classmethod
    def load(cls, model: LocalModel, cache_dir: Path) -> VllmEngine:
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        from vllm import LLM, SamplingParams

        folder = model_folder(model.path, cache_dir)
        llm = LLM(**llm_options(model, folder))
        context = int(llm.llm_engine.model_config.max_model_len)
        return cls(folder.name, llm, context, SamplingParams)

    def count_prompt(self, messages: Sequence[dict[str, Any]]) -> int:
        ids = self.llm.get_tokenizer().apply_chat_template(
            list(messages), add_generation_prompt=True
        )
        return len(ids)

    def forget_prefixes(self) -> None:
        self.llm.reset_prefix_cache()

    def generate(self, requests: Sequence[EngineRequest]) -> BatchRun:
        params = [
            self.sampling(temperature=0.0, max_tokens=r.max_new_tokens, logprobs=1)
            for r in requests
        ]
        started = time.perf_counter()
        outputs = self.llm.chat([list(r.messages) for r in requests], params, use_tqdm=False)
        engine_s = time.perf_counter() - started
        return BatchRun([_generation(o) for o in outputs], engine_s)


def _generation(output: Any) -> Generation:
    """A vLLM ``RequestOutput`` as a generation: each sampled token's log-probability."""
    first = output.outputs[0]
    steps = first.logprobs or []
    logprobs = tuple(
        float(step[token].logprob) for token, step in zip(first.token_ids, steps, strict=False)
    )
    reason = "stop" if first.finish_reason == "stop" else "length"
    return Generation(
        first.text,
        len(output.prompt_token_ids),
        len(first.token_ids),
        logprobs,
        reason,
        tokens_cached=int(getattr(output, "num_cached_tokens", None) or 0),
    )
