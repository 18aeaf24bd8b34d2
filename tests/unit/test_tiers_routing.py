from pathlib import Path

import pytest

from policies.money import to_nano, to_nano_up
from policies.pricing import Price
from policies.routing import route_by_rules
from policies.tables import DEFAULT_TIER_TABLE
from policies.tiers import (
    ModelSpec,
    load_tier_table,
    parse_tier_table,
    reservation_usd,
)

TABLE = load_tier_table(DEFAULT_TIER_TABLE)


def test_tiers_come_in_escalation_order_from_the_table():
    assert TABLE.names == ["cheap", "mid", "frontier"]
    assert TABLE.next_tier("cheap") == "mid" and TABLE.next_tier("frontier") is None
    assert TABLE.model_of("frontier").name == "sim/gpt-4o"


@pytest.mark.parametrize(
    ("tokens_in", "tokens_out", "cached", "expected"),
    [
        (1_000_000, 0, 0, 2.50),
        (0, 1_000_000, 0, 10.00),
        (1_000_000, 0, 1_000_000, 1.25),
        (1000, 100, 400, (600 * 2.5 + 400 * 1.25 + 100 * 10) / 1e6),
    ],
)
def test_cost_applies_input_cached_and_output_prices(tokens_in, tokens_out, cached, expected):
    assert TABLE.model_of("frontier").cost(tokens_in, tokens_out, cached) == pytest.approx(expected)


def test_reservation_is_the_worst_case_and_rounds_up():
    model = ModelSpec("m", "simulated", Price(1.0, 2.0, 0.5, 1.0))
    assert reservation_usd(model, 1000, 500) == pytest.approx((1000 + 1000) / 1e6)
    assert to_nano_up(1e-9 * 1.2) == 2 and to_nano(1e-9 * 1.2) == 1


@pytest.mark.parametrize(
    ("kind", "tokens", "schema", "tier"),
    [
        ("chat", 100, False, "cheap"),
        ("code", 100, False, "mid"),
        ("reason", 100, False, "frontier"),
        ("unknown_kind", 100, False, "cheap"),
        ("chat", 50_000, False, "mid"),
        ("code", 50_000, False, "frontier"),
        ("reason", 50_000, False, "frontier"),
    ],
)
def test_rule_router(kind, tokens, schema, tier):
    route = route_by_rules(TABLE, task_kind=kind, prompt_tokens=tokens, has_schema=schema)
    assert route.tier == tier
    assert f"task_kind={kind}" in route.why


def test_schema_floor_raises_the_tier():
    data = {
        "tiers": {"a": {"rank": 0, "model": "x"}, "b": {"rank": 1, "model": "x"}},
        "models": {"x": {"provider": "simulated", "input_per_mtok": 1, "output_per_mtok": 1}},
        "routing": {"schema_min_tier": "b"},
    }
    table = parse_tier_table(data)
    route = route_by_rules(table, task_kind="chat", prompt_tokens=10, has_schema=True)
    assert route.tier == "b" and "schema" in route.why


def test_table_naming_an_unknown_model_or_tier_is_refused():
    with pytest.raises(ValueError, match="not in"):
        parse_tier_table({"tiers": {"a": {"rank": 0, "model": "nope"}}, "models": {}})
    with pytest.raises(ValueError, match="routing names tier"):
        parse_tier_table(
            {
                "tiers": {"a": {"rank": 0, "model": "x"}},
                "models": {"x": {"provider": "p", "input_per_mtok": 1, "output_per_mtok": 1}},
                "routing": {"task_kind": {"chat": "zzz"}},
            }
        )


def test_reservation_covers_anthropic_cache_writes():
    model = ModelSpec("c", "anthropic", Price(1.0, 5.0, 0.1, 1.25, batch_discount=0.5))
    assert reservation_usd(model, 1000, 100) == pytest.approx((1000 * 1.25 + 100 * 5) / 1e6)
    assert reservation_usd(model, 1000, 100, batch=True) == pytest.approx(
        (1000 * 1.25 + 100 * 5) / 2e6
    )


def test_a_tier_may_hold_several_models_and_the_router_picks_among_them():
    data = {
        "tiers": {
            "cheap": {"rank": 0, "models": ["a", "b"]},
            "top": {"rank": 1, "model": "c"},
        },
        "models": {
            m: {"provider": "replay", "input_per_mtok": 1, "output_per_mtok": 1} for m in "abc"
        },
    }
    table = parse_tier_table(data)
    assert table.tier("cheap").members == ("a", "b") and table.model_of("cheap").name == "a"
    assert table.pick("cheap", "b").name == "b" and table.pick("cheap", None).name == "a"
    assert table.tier_of_model("c") == "top"
    with pytest.raises(KeyError, match="not in tier"):
        table.pick("cheap", "c")


def test_a_shipped_table_is_named_by_its_bare_name(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    assert load_tier_table(Path("local")).model_of("cheap").local is not None
    assert load_tier_table(Path("local_gpu")).model_of("cheap").local.engine == "vllm"
    (tmp_path / "local").write_text(
        'version = "mine"\n[tiers.a]\nrank = 0\nmodel = "m"\n'
        '[models.m]\nprovider = "simulated"\n'
        "input_per_mtok = 1\noutput_per_mtok = 1\n"
    )
    assert load_tier_table(Path("local")).version == "mine"  # a file of that name wins
    with pytest.raises(FileNotFoundError):
        load_tier_table(Path("no-such-table"))


@pytest.mark.parametrize("target", ["a", "zzz"])
def test_escalate_to_must_name_a_tier_above(target):
    data = {
        "tiers": {
            "a": {"rank": 0, "model": "x"},
            "b": {"rank": 1, "model": "x", "escalate_to": target},
            "c": {"rank": 2, "model": "x"},
        },
        "models": {"x": {"provider": "simulated", "input_per_mtok": 1, "output_per_mtok": 1}},
    }
    with pytest.raises(ValueError, match="escalate_to must name a tier ranked above"):
        parse_tier_table(data)
    data["tiers"]["b"]["escalate_to"] = "c"
    data["tiers"]["a"]["escalate_to"] = "c"
    assert parse_tier_table(data).escalation_of("a") == "c"


def test_the_routerbench_table_accepts_cheap_answers_on_agreement_else_the_frontier():
    table = load_tier_table(Path("routerbench"))
    cheap = table.tier("cheap")
    assert (cheap.acceptance, cheap.cross_check) == ("agreement", "zero-one-ai/Yi-34B-Chat")
    assert table.escalation_of("cheap") == "frontier" and table.escalation_of("mid") == "frontier"
