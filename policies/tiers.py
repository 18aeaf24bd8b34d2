"""The tier and price table: tiers in escalation order, each model's provider and prices."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MTOK = 1_000_000


@dataclass(frozen=True)
class ModelSpec:
    name: str
    provider: str
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float
    capability: float | None = None  # simulated provider only

    def cost(self, tokens_in: int, tokens_out: int, tokens_cached: int = 0) -> float:
        """Dollar cost of one call; cached input tokens are part of tokens_in."""
        fresh = max(0, tokens_in - tokens_cached)
        return (
            fresh * self.input_per_mtok
            + tokens_cached * self.cached_input_per_mtok
            + tokens_out * self.output_per_mtok
        ) / MTOK


@dataclass(frozen=True)
class Tier:
    name: str
    rank: int
    model: str
    accept_min_confidence: float


@dataclass(frozen=True)
class RoutingRules:
    default_tier: str
    long_prompt_tokens: int
    schema_min_tier: str
    task_kind: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TierTable:
    version: str
    tiers: tuple[Tier, ...]  # cheapest first: the cascade's order
    models: dict[str, ModelSpec]
    routing: RoutingRules

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tiers]

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(f"unknown tier {name!r}; the table has {self.names}")

    def model_of(self, tier: str) -> ModelSpec:
        return self.models[self.tier(tier).model]

    def next_tier(self, name: str) -> str | None:
        rank = self.names.index(name)
        return self.names[rank + 1] if rank + 1 < len(self.tiers) else None

    @property
    def top(self) -> Tier:
        return self.tiers[-1]

    def at_least(self, tier: str, floor: str) -> str:
        return tier if self.names.index(tier) >= self.names.index(floor) else floor


def parse_tier_table(data: dict[str, Any]) -> TierTable:
    models = {
        name: ModelSpec(
            name=name,
            provider=str(spec["provider"]),
            input_per_mtok=float(spec["input_per_mtok"]),
            output_per_mtok=float(spec["output_per_mtok"]),
            cached_input_per_mtok=float(spec.get("cached_input_per_mtok", spec["input_per_mtok"])),
            capability=float(spec["capability"]) if "capability" in spec else None,
        )
        for name, spec in data["models"].items()
    }
    tiers = tuple(
        sorted(
            (
                Tier(
                    name, int(t["rank"]), str(t["model"]), float(t.get("accept_min_confidence", 0))
                )
                for name, t in data["tiers"].items()
            ),
            key=lambda t: t.rank,
        )
    )
    for tier in tiers:
        if tier.model not in models:
            raise ValueError(f"tier {tier.name!r} names model {tier.model!r}, not in [models]")
    r = data.get("routing", {})
    names = [t.name for t in tiers]
    rules = RoutingRules(
        default_tier=str(r.get("default_tier", names[0])),
        long_prompt_tokens=int(r.get("long_prompt_tokens", 10**9)),
        schema_min_tier=str(r.get("schema_min_tier", names[0])),
        task_kind={str(k): str(v) for k, v in r.get("task_kind", {}).items()},
    )
    for tier_name in [rules.default_tier, rules.schema_min_tier, *rules.task_kind.values()]:
        if tier_name not in names:
            raise ValueError(f"routing names tier {tier_name!r}; the table has {names}")
    return TierTable(str(data.get("version", "unversioned")), tiers, models, rules)


def load_tier_table(path: Path) -> TierTable:
    with path.open("rb") as fh:
        return parse_tier_table(tomllib.load(fh))


def reservation_usd(model: ModelSpec, tokens_in: int, max_output_tokens: int) -> float:
    """The most a call can cost: every input token fresh, every allowed output token used."""
    return model.cost(tokens_in, max_output_tokens)


NANO = 1_000_000_000


def to_nano_up(usd: float) -> int:
    """Dollars to integer nano-dollars, rounded up (reservations never under-reserve)."""
    return math.ceil(usd * NANO - 1e-6)


def to_nano(usd: float) -> int:
    return round(usd * NANO)
