"""Prices and the providers' billing rules, as pure data and arithmetic.

One dated table (``policies/tables/prices.toml``) holds, per model, the published price of
fresh input, cached input read, cache write and output tokens, and the batch discount. A
user's own file, named by ``TIERFLEET_PRICE_TABLE``, overrides it model by model.

Usage is normalised by the provider adapters so that one rule prices every provider:
``tokens_in`` counts every input token, cache reads and cache writes included (OpenAI's
``prompt_tokens`` already does; Anthropic's ``input_tokens`` does not, so its adapter adds
``cache_read_input_tokens`` and ``cache_creation_input_tokens``).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.tables import PRICE_TABLE
from queues.base import Usage

MTOK = 1_000_000


@dataclass(frozen=True)
class Price:
    """USD per million tokens, and the share taken off by the provider's batch API."""

    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float
    cache_write_per_mtok: float
    batch_discount: float = 0.0
    context_tokens: int = 0  # the model's context window, prompt and answer; 0: not listed

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        if usage.tokens_cached + usage.tokens_cache_write > usage.tokens_in:
            raise ValueError(f"cache reads and writes exceed the input in {usage}")
        full = (
            usage.tokens_fresh * self.input_per_mtok
            + usage.tokens_cached * self.cached_input_per_mtok
            + usage.tokens_cache_write * self.cache_write_per_mtok
            + usage.tokens_out * self.output_per_mtok
        ) / MTOK
        return full * (1.0 - self.batch_discount) if batch else full


def parse_price(spec: dict[str, Any], base: Price | None = None) -> Price:
    """A price from a table entry; keys it leaves out come from ``base``, else from input."""

    def pick(key: str, fallback: float | None) -> float:
        if key in spec:
            return float(spec[key])
        if fallback is None:
            raise ValueError(f"price entry {spec} lacks {key!r}")
        return fallback

    inp = pick("input_per_mtok", base.input_per_mtok if base else None)
    price = Price(
        input_per_mtok=inp,
        output_per_mtok=pick("output_per_mtok", base.output_per_mtok if base else None),
        cached_input_per_mtok=pick(
            "cached_input_per_mtok", base.cached_input_per_mtok if base else inp
        ),
        cache_write_per_mtok=pick(
            "cache_write_per_mtok", base.cache_write_per_mtok if base else inp
        ),
        batch_discount=pick("batch_discount", base.batch_discount if base else 0.0),
        context_tokens=int(pick("context_tokens", base.context_tokens if base else 0.0)),
    )
    if not 0.0 <= price.batch_discount < 1.0:
        raise ValueError(f"batch_discount must be in [0, 1): {price.batch_discount}")
    return price


@dataclass(frozen=True)
class PriceTable:
    version: str  # the date the prices were read off the providers' pages
    prices: dict[str, Price]

    def get(self, model: str) -> Price | None:
        return self.prices.get(model)


def parse_price_table(data: dict[str, Any], base: PriceTable | None = None) -> PriceTable:
    prices = dict(base.prices) if base else {}
    for name, spec in data.get("models", {}).items():
        prices[name] = parse_price(spec, prices.get(name))
    version = str(data.get("version", base.version if base else "unversioned"))
    if base is not None and version != base.version:
        version = f"{base.version}+{version}"
    return PriceTable(version, prices)


def load_price_table(override: Path | None = None) -> PriceTable:
    """The shipped table, with a user's file (if any) laid over it model by model."""
    with PRICE_TABLE.open("rb") as fh:
        table = parse_price_table(tomllib.load(fh))
    if override is not None:
        with override.open("rb") as fh:
            table = parse_price_table(tomllib.load(fh), table)
    return table


# OpenAI's prompt cache: a prompt whose start matches a recent one is billed as cached for
# the matching part, from 1,024 tokens, in steps of 128 (the provider test server and the
# compression bench both follow this one rule).
OPENAI_CACHE_MIN_TOKENS = 1024
OPENAI_CACHE_INCREMENT = 128


def openai_cached_tokens(shared_prefix_tokens: int) -> int:
    """The tokens OpenAI bills as cached when a prompt's first ``shared_prefix_tokens``
    match a prompt it has seen: none under 1,024, else rounded down to a step of 128."""
    if shared_prefix_tokens < OPENAI_CACHE_MIN_TOKENS:
        return 0
    excess = shared_prefix_tokens - OPENAI_CACHE_MIN_TOKENS
    return shared_prefix_tokens - excess % OPENAI_CACHE_INCREMENT
