"""The LLMLingua prompt compressor (the ``llmlingua`` package), for workers with a GPU and a
local compressor model: a causal LM for LLMLingua, or a token-classification model for
LLMLingua-2 (told apart by the model's config). It drops the tokens the small model finds
least informative, conditioned on the question; the lexical default needs no model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def is_llmlingua2(model_path: Path) -> bool:
    config = model_path / "config.json"
    if not config.exists():
        return False
    architectures = json.loads(config.read_text()).get("architectures") or []
    return any(a.endswith("ForTokenClassification") for a in architectures)


def as_cache(past: Any) -> Any:
    """llmlingua's legacy ``[[keys, values], ...]`` -> the Cache object transformers expects."""
    if not isinstance(past, list | tuple):
        return past
    from transformers import DynamicCache

    pairs = [(keys, values) for keys, values in past]
    if hasattr(DynamicCache, "from_legacy_cache"):  # transformers 4
        return DynamicCache.from_legacy_cache(tuple(pairs))
    return DynamicCache(pairs)  # transformers 5


def as_legacy(cache: Any) -> Any:
    """A Cache object -> the ``[[keys, values], ...]`` lists llmlingua slices and indexes."""
    if cache is None or isinstance(cache, list | tuple):
        return cache
    if hasattr(cache, "to_legacy_cache"):
        return [list(layer) for layer in cache.to_legacy_cache()]
    return [[layer.keys, layer.values] for layer in cache.layers]


class LegacyKvModel:
    """Wraps the compressor's causal LM so llmlingua 0.2's KV-cache handling, written for the
    tuples transformers 4 returned, works on the Cache objects of newer releases."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __call__(self, *args: Any, past_key_values: Any = None, **kwargs: Any) -> Any:
        response = self.model(*args, past_key_values=as_cache(past_key_values), **kwargs)
        response.past_key_values = as_legacy(response.past_key_values)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


class LlmLinguaCompressor:
    """A ``TextCompressor``: (text, query, token budget) -> compressed text."""

    def __init__(self, compressor: Any, question_aware: bool = True) -> None:
        self.compressor = compressor
        # LongLLMLingua's question-aware token scoring: a token's worth is how much it tells
        # the small model about the question, not how surprising it is on its own.
        self.options: dict[str, Any] = (
            {"condition_in_question": "after_condition", "condition_compare": True}
            if question_aware and not compressor.use_llmlingua2
            else {}
        )

    @classmethod
    def load(
        cls, model_path: Path, device: str, question_aware: bool = True
    ) -> LlmLinguaCompressor:
        from llmlingua import PromptCompressor  # the optional `llmlingua` extra

        if not model_path.exists():
            raise OSError(f"no compressor model at {model_path}")
        compressor = PromptCompressor(
            model_name=str(model_path),
            device_map=device,
            use_llmlingua2=is_llmlingua2(model_path),
        )
        if not compressor.use_llmlingua2:  # only LLMLingua (v1) carries a KV cache
            compressor.model = LegacyKvModel(compressor.model)
        return cls(compressor, question_aware)

    def __call__(self, text: str, query: str, budget: int) -> str:
        # The question-aware path finds where the text starts by tokenizing question +
        # "\n\n" + text and asserts the split decodes back; leading newlines would merge
        # with that separator into one token and fail it, so they are set aside and put back.
        body = text.lstrip()
        lead = text[: len(text) - len(body)]
        result = self.compressor.compress_prompt(
            [body],
            question=query,
            target_token=budget,
            use_context_level_filter=False,
            **self.options,
        )
        return lead + str(result["compressed_prompt"])
