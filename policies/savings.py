"""What each lever saved on one step against sending it uncached and uncompressed to the
frontier model, as a waterfall from that price down to what the step cost:

- a cache hit saved the whole frontier price (exact or semantic layer);
- compression: the frontier price of the prompt tokens it removed;
- routing: the frontier price of the tokens sent, less their list price on the models that
  answered (every call, failed and escalated ones too: a bad route shows as a negative);
- prefix caching: the list price less the price with the cached input tokens discounted;
- the batch lane: the rest, the batch API's discount.

The levers add up to the frontier price less the cost. A call of a model the table no
longer lists (or a local model, billed by the hour) counts at its cost under routing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from policies.tiers import ModelSpec
from queues.records import LedgerCall, LedgerEntry

LEVERS = (
    "exact_cache",
    "semantic_cache",
    "compression",
    "routing",
    "prefix_cache",
    "batch_lane",
)


def frontier_price(frontier: ModelSpec, prompt_tokens: int, output_tokens: int) -> float:
    """The step sent once to the frontier model, uncached and uncompressed."""
    return frontier.cost(prompt_tokens, output_tokens)


def _list_price(call: LedgerCall, models: Mapping[str, ModelSpec], cached: bool) -> float:
    model = models.get(call.model)
    if model is None or model.local is not None:
        return call.cost_usd
    if cached:
        return model.cost(
            call.tokens_in, call.tokens_out, call.tokens_cached, call.tokens_cache_write
        )
    return model.cost(call.tokens_in, call.tokens_out)


def lever_savings(
    entry: LedgerEntry, models: Mapping[str, ModelSpec], frontier: ModelSpec
) -> dict[str, float]:
    saved = dict.fromkeys(LEVERS, 0.0)
    base = entry.frontier_usd
    if base <= 0:
        return saved
    if entry.cache_hit:
        saved["semantic_cache" if entry.semantic else "exact_cache"] = base - entry.cost_usd
        return saved
    calls = list(entry.calls)
    answered = next((c for c in reversed(calls) if c.accepted), calls[-1] if calls else None)
    if answered is None:  # no call made (a budget stop before any): nothing to split
        saved["routing"] = base - entry.cost_usd
        return saved
    sent = frontier_price(frontier, answered.tokens_in, answered.tokens_out)
    listed = sum(_list_price(c, models, cached=False) for c in calls)
    discounted = sum(_list_price(c, models, cached=True) for c in calls)
    saved["compression"] = base - sent
    saved["routing"] = sent - listed
    saved["prefix_cache"] = listed - discounted
    saved["batch_lane"] = discounted - entry.cost_usd
    return saved


def total_savings(
    entries: Iterable[LedgerEntry], models: Mapping[str, ModelSpec], frontier: ModelSpec
) -> dict[str, float]:
    out = dict.fromkeys(LEVERS, 0.0)
    for entry in entries:
        for lever, value in lever_savings(entry, models, frontier).items():
            out[lever] += value
    return out
