"""The compression plan's config (policies/compression.py reads its defaults from here)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class CompressionConfig(BaseModel):
    # Compression (policies/compression.py): the recent window is kept whole, older history
    # pruned; JSON tool output compacted, cut to the records the request needs past
    # tool_result_max_tokens; free text past text_max_tokens goes to the prompt compressor
    # (LLMLingua when compressor_model_path is set, else the lexical default).
    keep_last_messages: int = 2
    window_stride: int = 4  # the kept window moves in steps of this many (prefix-cache friendly)
    # For messages before the window, filled by worth per token; None: no cap. The default is
    # the largest cut that keeps >= 99% of used facts on the tuning half of the tau-bench
    # tasks (bench compress-tune); BENCHMARKS.md reports it on the other half.
    history_budget_tokens: int | None = 1000
    # The omitted note keeps the ids, numbers and codes of dropped tool results, by field
    # and row, that the prompt shows nowhere else (their tokens paid from the budget).
    keep_dropped_facts: bool = True
    # A tier whose provider bills cached prefixes gets the whole (compacted) history instead
    # of the pruned one where its cache prices bill that for less (policies/history_plan.py).
    history_by_cache_prices: bool = True
    tool_result_max_tokens: int = 600
    text_max_tokens: int = 3000
    text_ratio: float = Field(default=0.5, gt=0.0, le=1.0)
    compressor_model_path: Path | None = None  # a local LLMLingua model (GPU workers)
    compressor_device: str = "cuda"
    # LongLLMLingua's conditioning on the question (LLMLingua v1 models); off: plain scoring.
    compressor_question_aware: bool = True
    # A one-line summary of each tool exchange the history budget drops, by the cheap tier
    # (a summarize step of its own, charged to the session); later calls carry it.
    summarize_dropped: bool = False
    summary_max_tokens: int = Field(default=120, ge=16)
    summary_ttl_s: int = Field(default=86_400, ge=60)  # how long a session's summaries live
