"""The tier and price table: tiers in escalation order, each model's provider and prices."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.acceptance_rule import acceptance_rule
from policies.local_models import LocalModel, parse_local
from policies.pricing import Price, PriceTable, load_price_table, parse_price
from policies.tables import DEFAULT_TIER_TABLE, TABLES
from queues.base import Usage


@dataclass(frozen=True)
class Counting:
    """How to count a model's input conservatively with the fleet's own BPE (o200k): the
    factor covers a tokenizer that splits text finer than o200k, the image allowance the
    most one image can be billed as after the provider's own resizing."""

    factor: float = 1.0
    image_tokens: int = 1600


# Defaults per provider family; a model entry may set ``count_factor`` / ``image_tokens``.
# Anthropic's tokenizer yields up to ~1.35x o200k's count on English and code; its images
# cost at most ~1,600 tokens (1.15 megapixels). OpenAI's current models use o200k itself;
# a gpt-4o image in high detail is at most 85 + 8 x 170 tokens. A self-hosted model's
# tokenizer is unknown (small vocabularies split finer): 1.5x.
PROVIDER_COUNTING: dict[str, Counting] = {
    "openai": Counting(1.0, 1445),
    "anthropic": Counting(1.4, 1600),
    "openai-compatible": Counting(1.5, 2000),
    "local": Counting(1.5, 2000),
}
DEFAULT_COUNTING = Counting(1.0, 1600)  # simulated and replay: they count with o200k too


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the table's name for the model
    provider: str  # a key of the provider registry: openai, anthropic, openai-compatible, ...
    price: Price
    api_model: str = ""  # the id sent to the provider; the name when empty
    capability: float | None = None  # simulated provider only
    counting: Counting = DEFAULT_COUNTING  # for budget reservations
    local: LocalModel | None = None  # set for a model the fleet runs itself

    @property
    def model_id(self) -> str:
        return self.api_model or self.name

    @property
    def context_tokens(self) -> int | None:
        """The context window the price table lists (a local model's engine says its own)."""
        return self.price.context_tokens or None

    def cost(
        self,
        tokens_in: int,
        tokens_out: int,
        tokens_cached: int = 0,
        tokens_cache_write: int = 0,
        *,
        batch: bool = False,
    ) -> float:
        """Dollar cost of one call; cache reads and writes are part of tokens_in."""
        usage = Usage(
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            tokens_cached=tokens_cached,
            tokens_cache_write=tokens_cache_write,
        )
        return self.price.cost(usage, batch=batch)


@dataclass(frozen=True)
class Tier:
    name: str
    rank: int
    model: str  # the tier's default model: the rule router and escalations use it
    accept_min_confidence: float
    models: tuple[str, ...] = ()  # every model of the tier, the default first
    # "checks": an answer passing the format/schema/confidence checks is accepted.
    # "agreement": it must also agree with a second model's answer (``cross_check``).
    acceptance: str = "checks"
    cross_check: str | None = None
    # The tier's own micro-batches (a local model's engine wants more company than an API
    # call): steps per batch and the longest a step waits for company. None: the settings'.
    flush_every: int | None = None
    flush_interval_s: float | None = None
    # "judge": a passing answer is also put to the ``judge`` model (policies/judge.py).
    judge: str | None = None
    # Where an answer's confidence comes from: "provider" (log-probabilities, else the
    # learned acceptance check) or "self_report" (the model's own, policies/self_report.py).
    confidence: str = "provider"
    escalate_to: str | None = None  # where a rejection goes; None: the next tier up

    @property
    def members(self) -> tuple[str, ...]:
        return self.models or (self.model,)


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
    prices_version: str = ""

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tiers]

    @property
    def flush_sizes(self) -> dict[str, int]:
        """The micro-batch size of each tier that sets its own (its worker prefetches it)."""
        return {t.name: t.flush_every for t in self.tiers if t.flush_every is not None}

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(f"unknown tier {name!r}; the table has {self.names}")

    def model_of(self, tier: str) -> ModelSpec:
        return self.models[self.tier(tier).model]

    def tier_of_model(self, model: str) -> str:
        for tier in self.tiers:
            if model in tier.members:
                return tier.name
        raise KeyError(f"model {model!r} is in no tier")

    def pick(self, tier: str, model: str | None) -> ModelSpec:
        """The model that answers at ``tier``: ``model`` if the router chose one of the
        tier's models, else the tier's default."""
        if model is None:
            return self.model_of(tier)
        spec = self.tier(tier)
        if model not in spec.members and model not in (spec.cross_check, spec.judge):
            raise KeyError(f"model {model!r} is not in tier {tier!r}")
        return self.models[model]

    def next_tier(self, name: str) -> str | None:
        rank = self.names.index(name)
        return self.names[rank + 1] if rank + 1 < len(self.tiers) else None

    def escalation_of(self, name: str) -> str | None:
        """Where an answer ``name`` rejects goes: its ``escalate_to``, else the next tier."""
        return self.tier(name).escalate_to or self.next_tier(name)

    @property
    def top(self) -> Tier:
        return self.tiers[-1]

    def at_least(self, tier: str, floor: str) -> str:
        return tier if self.names.index(tier) >= self.names.index(floor) else floor

    def at_most(self, tier: str, cap: str | None) -> str:
        """``tier``, or ``cap`` if that is lower (None: the cheapest tier)."""
        ceiling = cap or self.names[0]
        return tier if self.names.index(tier) <= self.names.index(ceiling) else ceiling


def _model(name: str, spec: dict[str, Any], prices: PriceTable | None) -> ModelSpec:
    """A table model: its price is the price table's entry (looked up by ``price``, else the
    API model id), with any price keys given inline laid over it."""
    api_model = str(spec.get("api_model", ""))
    listed = prices.get(str(spec.get("price", api_model or name))) if prices else None
    try:
        price = parse_price(spec, listed)
    except ValueError as exc:
        raise ValueError(
            f"model {name!r} has no price in the price table or inline: {exc}"
        ) from exc
    provider = str(spec["provider"])
    base = PROVIDER_COUNTING.get(provider, DEFAULT_COUNTING)
    counting = Counting(
        float(spec.get("count_factor", base.factor)),
        int(spec.get("image_tokens", base.image_tokens)),
    )
    if counting.factor < 1.0 or counting.image_tokens < 0:
        raise ValueError(f"model {name!r}: count_factor must be >= 1 and image_tokens >= 0")
    return ModelSpec(
        name=name,
        provider=provider,
        price=price,
        api_model=api_model,
        capability=float(spec["capability"]) if "capability" in spec else None,
        counting=counting,
        local=parse_local(name, spec),
    )


def _tier(name: str, spec: dict[str, Any]) -> Tier:
    """A tier names one model (``model``) or several (``models``, the default first)."""
    listed = [str(m) for m in spec.get("models", [])]
    default = str(spec.get("model", listed[0] if listed else ""))
    if not default:
        raise ValueError(f"tier {name!r} names no model")
    members = (default, *(m for m in listed if m != default))
    rule = acceptance_rule(name, spec)
    return Tier(
        name,
        int(spec["rank"]),
        default,
        float(spec.get("accept_min_confidence", 0)),
        members,
        rule.acceptance,
        rule.cross_check,
        int(spec["flush_every"]) if "flush_every" in spec else None,
        float(spec["flush_interval_s"]) if "flush_interval_s" in spec else None,
        rule.judge,
        rule.confidence,
        rule.escalate_to,
    )


def parse_tier_table(data: dict[str, Any], prices: PriceTable | None = None) -> TierTable:
    models = {name: _model(name, spec, prices) for name, spec in data["models"].items()}
    tiers = tuple(
        sorted((_tier(name, t) for name, t in data["tiers"].items()), key=lambda t: t.rank)
    )
    names = [t.name for t in tiers]
    for tier in tiers:
        helpers = [m for m in (tier.cross_check, tier.judge) if m]
        for model in (*tier.members, *helpers):
            if model not in models:
                raise ValueError(f"tier {tier.name!r} names model {model!r}, not in [models]")
        if tier.escalate_to and tier.escalate_to not in names[names.index(tier.name) + 1 :]:
            raise ValueError(
                f"tier {tier.name!r}: escalate_to must name a tier ranked above it, of {names}"
            )
    r = data.get("routing", {})
    rules = RoutingRules(
        default_tier=str(r.get("default_tier", names[0])),
        long_prompt_tokens=int(r.get("long_prompt_tokens", 10**9)),
        schema_min_tier=str(r.get("schema_min_tier", names[0])),
        task_kind={str(k): str(v) for k, v in r.get("task_kind", {}).items()},
    )
    for tier_name in [rules.default_tier, rules.schema_min_tier, *rules.task_kind.values()]:
        if tier_name not in names:
            raise ValueError(f"routing names tier {tier_name!r}; the table has {names}")
    return TierTable(
        str(data.get("version", "unversioned")),
        tiers,
        models,
        rules,
        prices.version if prices else "",
    )


def shipped_or_given(path: Path | None) -> Path:
    """``path``; a shipped table's bare name (``local``, ``local_gpu``, ``routerbench``) is
    that table wherever the package is installed; None is the shipped default."""
    if path is None:
        return DEFAULT_TIER_TABLE
    shipped = TABLES / f"{path}.toml"
    bare = path.parent == Path(".") and not path.suffix
    return shipped if bare and not path.exists() and shipped.exists() else path


def load_tier_table(path: Path | None, price_table: Path | None = None) -> TierTable:
    """The tier table at ``path`` (None: the shipped default; a bare name: the shipped
    table of that name), priced from the shipped price table and ``price_table``."""
    with shipped_or_given(path).open("rb") as fh:
        return parse_tier_table(tomllib.load(fh), load_price_table(price_table))


def reservation_usd(
    model: ModelSpec, tokens_in: int, max_output_tokens: int, *, batch: bool = False
) -> float:
    """The most a call can cost: every input token at its dearest (fresh, or written to the
    prompt cache), every allowed output token used."""
    if model.price.cache_write_per_mtok > model.price.input_per_mtok:
        return model.cost(tokens_in, max_output_tokens, 0, tokens_in, batch=batch)
    return model.cost(tokens_in, max_output_tokens, batch=batch)
