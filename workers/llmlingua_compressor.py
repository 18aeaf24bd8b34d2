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


class LlmLinguaCompressor:
    """A ``TextCompressor``: (text, query, token budget) -> compressed text."""

    def __init__(self, compressor: Any) -> None:
        self.compressor = compressor

    @classmethod
    def load(cls, model_path: Path, device: str) -> LlmLinguaCompressor:
        from llmlingua import PromptCompressor  # the optional `llmlingua` extra

        if not model_path.exists():
            raise OSError(f"no compressor model at {model_path}")
        compressor = PromptCompressor(
            model_name=str(model_path),
            device_map=device,
            use_llmlingua2=is_llmlingua2(model_path),
        )
        return cls(compressor)

    def __call__(self, text: str, query: str, budget: int) -> str:
        result = self.compressor.compress_prompt(
            [text], question=query, target_token=budget, use_context_level_filter=False
        )
        return str(result["compressed_prompt"])
