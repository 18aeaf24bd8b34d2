"""When running a model yourself beats paying an API for it: a machine billed by the hour
costs the same whether it is busy or idle, an API bills each token. At the throughput the
model was measured at, the machine's cost per million tokens is its floor (fully busy); the
break-even volume is the daily traffic at which a machine kept up all day costs what the
API would have charged for that traffic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.pricing import MTOK, Price

DAY_S = 86_400


@dataclass(frozen=True)
class Throughput:
    """What a local model did in a span of engine time: tokens read (``tokens_cached`` of
    them from its prefix cache) and written."""

    tokens_in: int
    tokens_out: int
    engine_s: float
    tokens_cached: int = 0

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.engine_s if self.engine_s > 0 else 0.0

    @property
    def input_share(self) -> float:
        """The traffic's share of input tokens (APIs price input and output apart)."""
        return self.tokens_in / self.tokens if self.tokens else 0.0

    @property
    def cached_share(self) -> float:
        """The share of input tokens read from a prefix cache."""
        return self.tokens_cached / self.tokens_in if self.tokens_in else 0.0


def cost_per_mtok(hourly_usd: float, tokens_per_s: float) -> float | None:
    """Dollars per million tokens on a machine kept fully busy (None: no throughput)."""
    if tokens_per_s <= 0:
        return None
    return hourly_usd / 3600 / tokens_per_s * MTOK


def api_per_mtok(price: Price, input_share: float, cached_share: float = 0.0) -> float:
    """An API's dollars per million tokens for traffic with this share of input tokens, of
    which this share is read from the API's prompt cache (at its cached-input price: the
    same traffic would reuse the same prefixes there)."""
    per_input = (1 - cached_share) * price.input_per_mtok + cached_share * (
        price.cached_input_per_mtok
    )
    return input_share * per_input + (1 - input_share) * price.output_per_mtok


def breakeven_tokens_per_day(
    hourly_usd: float, tokens_per_s: float, api_usd_per_mtok: float
) -> float | None:
    """Tokens a day above which one machine kept up all day is cheaper than the API. None
    when it never is: fully busy, the machine's tokens cost more than the API's (more
    machines only multiply both sides)."""
    floor = cost_per_mtok(hourly_usd, tokens_per_s)
    if floor is None or api_usd_per_mtok <= 0 or floor >= api_usd_per_mtok:
        return None
    return hourly_usd * 24 / api_usd_per_mtok * MTOK


def against_apis(
    hourly_usd: float, measured: Throughput, apis: Mapping[str, Price]
) -> dict[str, dict[str, float | None]]:
    """Per API model: its price for this traffic mix and the break-even volume."""
    out: dict[str, dict[str, float | None]] = {}
    for name, price in sorted(apis.items()):
        per_mtok = api_per_mtok(price, measured.input_share, measured.cached_share)
        out[name] = {
            "api_usd_per_mtok": round(per_mtok, 4),
            "breakeven_tokens_per_day": _rounded(
                breakeven_tokens_per_day(hourly_usd, measured.tokens_per_s, per_mtok)
            ),
        }
    return out


def self_hosting(
    hourly_usd: float, measured: Throughput, apis: Mapping[str, Price]
) -> dict[str, Any]:
    """A local model's figures: throughput, cost per million tokens fully busy, its daily
    capacity on one machine, and each API's price and break-even beside it."""
    per_mtok = cost_per_mtok(hourly_usd, measured.tokens_per_s)
    return {
        "hourly_usd": hourly_usd,
        "tokens_per_s": round(measured.tokens_per_s, 2),
        "input_share": round(measured.input_share, 4),
        "cached_share": round(measured.cached_share, 4),
        "cost_per_mtok_usd": None if per_mtok is None else round(per_mtok, 4),
        "capacity_tokens_per_day": round(measured.tokens_per_s * DAY_S),
        "apis": against_apis(hourly_usd, measured, apis),
    }


def total(parts: Iterable[Throughput]) -> Throughput:
    parts = list(parts)
    return Throughput(
        sum(p.tokens_in for p in parts),
        sum(p.tokens_out for p in parts),
        sum(p.engine_s for p in parts),
        sum(p.tokens_cached for p in parts),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value)
