"""Self-hosting economics: cost per million tokens at a measured throughput, break-even."""

import pytest

from policies.pricing import Price
from policies.self_hosting import (
    Throughput,
    api_per_mtok,
    breakeven_tokens_per_day,
    cost_per_mtok,
    self_hosting,
    total,
)

MINI = Price(
    input_per_mtok=0.15,
    output_per_mtok=0.60,
    cached_input_per_mtok=0.075,
    cache_write_per_mtok=0.15,
)


def test_a_busy_machine_costs_its_hour_over_the_tokens_it_makes_in_an_hour():
    assert cost_per_mtok(0.05, 100.0) == pytest.approx(0.05 / 360_000 * 1e6)
    assert cost_per_mtok(0.05, 0.0) is None


def test_an_api_price_follows_the_traffic_mix():
    assert api_per_mtok(MINI, 0.9) == pytest.approx(0.9 * 0.15 + 0.1 * 0.60)


def test_break_even_is_the_daily_cost_over_the_api_price_when_the_machine_can_win():
    # 0.139 $/Mtok fully busy against 0.195 $/Mtok: a machine kept up all day costs $1.20,
    # which buys 6.15M API tokens; below that the API is cheaper.
    assert breakeven_tokens_per_day(0.05, 100.0, 0.195) == pytest.approx(1.2 / 0.195 * 1e6)
    assert breakeven_tokens_per_day(0.05, 100.0, 0.1) is None  # dearer even fully busy
    assert breakeven_tokens_per_day(0.05, 0.0, 0.195) is None


def test_the_figures_of_one_model_beside_each_api():
    measured = total([Throughput(800, 100, 6.0), Throughput(100, 0, 4.0)])
    assert measured.tokens_per_s == pytest.approx(100.0)
    figures = self_hosting(0.05, measured, {"gpt-4o-mini": MINI})
    assert figures["capacity_tokens_per_day"] == 8_640_000
    mini = figures["apis"]["gpt-4o-mini"]
    assert mini["api_usd_per_mtok"] == pytest.approx(0.195)
    assert mini["breakeven_tokens_per_day"] == pytest.approx(1.2 / 0.195 * 1e6, rel=1e-6)


def test_cached_input_is_priced_at_the_apis_cached_price():
    # Half the input read from a prefix cache: the API would read it from its own.
    assert api_per_mtok(MINI, 0.9, 0.5) == pytest.approx(0.9 * (0.075 + 0.0375) + 0.1 * 0.6)
    measured = Throughput(1000, 0, 1.0, tokens_cached=250)
    assert measured.cached_share == 0.25
