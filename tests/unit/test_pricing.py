import pytest

from policies.pricing import Price, load_price_table, openai_cached_tokens, parse_price_table
from policies.tiers import parse_tier_table
from queues.base import Usage

HAIKU = Price(1.00, 5.00, 0.10, 1.25, batch_discount=0.5)


def test_anthropic_rule_prices_reads_writes_and_fresh_input_apart():
    usage = Usage(tokens_in=10_000, tokens_out=200, tokens_cached=6_000, tokens_cache_write=3_000)
    expected = (1_000 * 1.00 + 6_000 * 0.10 + 3_000 * 1.25 + 200 * 5.00) / 1e6
    assert HAIKU.cost(usage) == pytest.approx(expected)
    assert HAIKU.cost(usage, batch=True) == pytest.approx(expected / 2)


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="exceed"):
        HAIKU.cost(Usage(tokens_in=10, tokens_out=0, tokens_cached=8, tokens_cache_write=3))
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Usage(tokens_in=-1, tokens_out=0)


def test_shipped_table_is_dated_and_openai_has_no_write_surcharge():
    table = load_price_table()
    assert table.version[:4].isdigit()
    mini = table.prices["gpt-4o-mini"]
    assert mini.cache_write_per_mtok == mini.input_per_mtok and mini.batch_discount == 0.5


def test_a_users_file_overrides_key_by_key(tmp_path):
    own = tmp_path / "prices.toml"
    own.write_text('version = "2026-12-01"\n[models."gpt-4o"]\noutput_per_mtok = 8.0\n')
    table = load_price_table(own)
    assert table.prices["gpt-4o"].output_per_mtok == 8.0
    assert table.prices["gpt-4o"].input_per_mtok == 2.50  # untouched keys stay
    assert table.version.endswith("+2026-12-01")


def test_tier_models_take_prices_from_the_table_or_inline():
    prices = parse_price_table(
        {"models": {"gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10}}}
    )
    data = {
        "tiers": {"a": {"rank": 0, "model": "local"}, "b": {"rank": 1, "model": "big"}},
        "models": {
            "local": {"provider": "openai-compatible", "input_per_mtok": 0, "output_per_mtok": 0},
            "big": {"provider": "openai", "api_model": "gpt-4o"},
        },
    }
    table = parse_tier_table(data, prices)
    assert (
        table.models["big"].price.output_per_mtok == 10 and table.models["big"].model_id == "gpt-4o"
    )
    assert table.models["local"].cost(1000, 1000) == 0.0
    data["models"]["big"]["api_model"] = "unlisted"
    with pytest.raises(ValueError, match="no price"):
        parse_tier_table(data, prices)


def test_openai_bills_a_shared_prefix_as_cached_from_1024_tokens_in_steps_of_128():
    assert [openai_cached_tokens(n) for n in (0, 1023, 1024, 1151, 1152, 5000)] == [
        0,
        0,
        1024,
        1024,
        1152,
        4992,
    ]
