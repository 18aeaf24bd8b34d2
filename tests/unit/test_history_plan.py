"""Which history a call carries, by its tier's cache prices (policies/history_plan.py)."""

from dataclasses import replace

import pytest

from policies.history_plan import MIN_CACHED_PREFIX, choose_history
from policies.pricing import load_price_table

PRICES = load_price_table()
HAIKU = PRICES.get("claude-haiku-4-5")
MINI = PRICES.get("gpt-4o-mini")


def test_cheap_cached_reads_and_dear_writes_carry_the_whole_history():
    # Anthropic: a read costs 0.1x input, a write 1.25x. Re-reading 1,500 more tokens a
    # call (150) is cheaper than writing the 1,500 kept again every 2 calls (862).
    choice = choose_history("anthropic", HAIKU, 2000, 1500, 3000, 200, stride=4)
    assert choice.whole and choice.name == "whole"
    assert "re-reading the 1500 pruned tokens at 0.10x input costs 150" in choice.why
    # Until the whole history is far longer than the pruned one.
    assert not choose_history("anthropic", HAIKU, 2000, 1500, 12_000, 200, stride=4).whole


def test_half_price_reads_and_no_write_premium_keep_the_pruned_history():
    # OpenAI: reads 0.5x, no write premium: re-reading (750) costs more than re-writing (375).
    choice = choose_history("openai", MINI, 2000, 1500, 3000, 200, stride=4)
    assert not choice.whole and choice.name == "pruned"


@pytest.mark.parametrize(
    ("provider", "static", "whole", "context", "reason"),
    [
        ("simulated", 2000, 3000, 0, "simulated bills no cached prefix"),
        ("anthropic", 100, 500, 0, f"under the {MIN_CACHED_PREFIX}-token cached prefix"),
        ("anthropic", 2000, 3000, 4000, "the whole history does not fit 4000"),
        ("anthropic", 2000, 300, 0, "nothing pruned"),
    ],
)
def test_the_pruned_history_where_whole_cannot_help(provider, static, whole, context, reason):
    price = replace(HAIKU, context_tokens=context)
    choice = choose_history(provider, price, static, 300, whole, 200, stride=4)
    assert not choice.whole and choice.why == reason


def test_anthropic_without_breakpoints_caches_nothing():
    choice = choose_history("anthropic", HAIKU, 2000, 1500, 3000, 200, 4, breakpoints=False)
    assert not choice.whole and "breakpoints, and they are off" in choice.why
