"""Which history a tier's call carries: the compress stage's pruned history or the whole
(compacted) one, whichever the tier's cache prices bill least.

Prices per token, relative to fresh input: r for a cached read, w for a cache write (1 where
the provider charges no write premium). Between window moves each call extends the last, so
under both plans a call reads the previous prompt from the cache and writes its new turn;
they differ in what is read again and what is written again:

- the whole history is read again on every call: r x W;
- the pruned one is read again too, r x P, but each time the window moves (every
  ``stride / 2`` calls: a call adds about two messages) the pruned part changes and is
  written again: (w - r) x P per move.

So the whole history bills less while r x (W - P) < (w - r) x P / calls_per_move. At
Anthropic's prices (r 0.1, w 1.25) that holds until the whole history is several times the
pruned one; at OpenAI's (r 0.5, w 1) only while they are nearly the same. Both plans keep
the used facts (the whole history keeps every one). A prompt under the smallest prefix a
provider caches, a provider that caches nothing, and a history the model cannot hold all
take the pruned plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.pricing import Price

# Providers whose API bills a cached prompt prefix below fresh input (policies/tables/
# prices.toml says how); the simulated, replayed and local providers do not. Anthropic
# caches only at cache_control breakpoints.
PREFIX_CACHING_PROVIDERS = frozenset({"openai", "anthropic"})
BREAKPOINT_CACHING_PROVIDERS = frozenset({"anthropic"})
MIN_CACHED_PREFIX = 1024  # tokens: the smallest prompt OpenAI or Anthropic caches


@dataclass(frozen=True)
class HistoryChoice:
    whole: bool
    why: str

    @property
    def name(self) -> str:
        return "whole" if self.whole else "pruned"


def choose_history(
    provider: str,
    price: Price,
    static: int,
    pruned: int,
    whole: int,
    output: int,
    stride: int,
    breakpoints: bool = True,
) -> HistoryChoice:
    """``static``: the prompt's cached prefix (system, tools); ``pruned`` and ``whole``: the
    rest of the prompt under each plan, in tokens; ``output``: the answer's allowance;
    ``breakpoints``: whether the fleet sets Anthropic's cache_control breakpoints."""
    if whole <= pruned:
        return HistoryChoice(False, "nothing pruned")
    if provider not in PREFIX_CACHING_PROVIDERS or price.input_per_mtok <= 0:
        return HistoryChoice(False, f"{provider} bills no cached prefix")
    if provider in BREAKPOINT_CACHING_PROVIDERS and not breakpoints:
        return HistoryChoice(False, f"{provider} caches at breakpoints, and they are off")
    if price.context_tokens and static + whole + output > price.context_tokens:
        return HistoryChoice(False, f"the whole history does not fit {price.context_tokens}")
    if static + whole < MIN_CACHED_PREFIX:
        return HistoryChoice(False, f"under the {MIN_CACHED_PREFIX}-token cached prefix")
    read = price.cached_input_per_mtok / price.input_per_mtok
    write = price.cache_write_per_mtok / price.input_per_mtok
    calls_per_move = max(1.0, stride / 2)
    reread = read * (whole - pruned)
    rewrite = (write - read) * pruned / calls_per_move
    whole_wins = reread < rewrite
    why = (
        f"{'whole' if whole_wins else 'pruned'} history: re-reading the {whole - pruned} "
        f"pruned tokens at {read:.2f}x input costs {reread:.0f} a call, re-writing the "
        f"{pruned} kept at {write - read:.2f}x once per window move {rewrite:.0f}"
    )
    return HistoryChoice(whole_wins, why)
