"""Every Redis key family is built from escaped parts: names that contain the separator can
never make two tenants', agents' or sessions' keys meet."""

import pytest

from policies.caching import exact_key
from policies.semantic_cache import scope_of
from policies.tables import DEFAULT_TIER_TABLE
from policies.tiers import load_tier_table
from queues import keys
from workers.testing import step

TABLE = load_tier_table(DEFAULT_TIER_TABLE)
# Pairs of (tenant, name) that a plain ":"-join (or "/"-join) would make equal.
COLLIDING = [
    (("acme:x", "y"), ("acme", "x:y")),
    (("acme/x", "y"), ("acme", "x/y")),
    (("a.b:c", "d"), ("a.b", "c:d")),
]
Q = [{"role": "system", "content": "sys"}, {"role": "user", "content": "What is the fee?"}]


@pytest.mark.parametrize(("first", "second"), COLLIDING)
def test_exact_cache_keys_of_colliding_names_differ(first, second):
    a = step(tenant=first[0], agent=first[1], messages=Q)
    b = step(tenant=second[0], agent=second[1], messages=Q)
    assert a.prompt_version == b.prompt_version
    assert exact_key(a) != exact_key(b)


@pytest.mark.parametrize(("first", "second"), COLLIDING)
@pytest.mark.parametrize(
    "family",
    [
        keys.session_budget,
        keys.agent_budget,
        keys.summaries,
        keys.final_guard,
        keys.result_id,
        keys.step_ref,
        keys.reservation_prefix,
        lambda t, n: keys.summary_claim(t, n, "unit"),
        lambda t, n: keys.reservation(t, n, 0, 0),
        lambda t, n: keys.hop_id(t, n, "cache", 0, 0),
    ],
)
def test_every_two_part_family_keeps_colliding_names_apart(family, first, second):
    assert family(*first) != family(*second)


def test_tenant_budgets_and_semantic_scopes_keep_names_apart():
    assert keys.tenant_budget("acme:x") != keys.tenant_budget("acme")
    a = step(tenant="acme:x", agent="y", messages=Q)
    b = step(tenant="acme", agent="x:y", messages=Q)
    assert scope_of(TABLE, a, "e@1").key != scope_of(TABLE, b, "e@1").key


def test_one_steps_reservations_never_match_another_steps_prefix():
    # Step "a" and step "a:1" of one tenant: "a"'s prefix must not cover "a:1"'s calls.
    assert not keys.reservation("acme", "a:1", 0, 0).startswith(
        keys.reservation_prefix("acme", "a")
    )
    assert keys.reservation("acme", "a", 2, 1).startswith(keys.reservation_prefix("acme", "a"))


def test_escaped_parts_hold_no_separator_or_glob_character():
    for name in ["a:b", "a/b", "a*b", "a?b", "a[b]", "a%b", "a\\\\b"]:
        escaped = keys.part(name)
        assert not set(escaped) & set(":/*?[]\\\\"), escaped
    pattern = keys.exact_cache_pattern("pv-*")
    assert "pv-*" not in pattern and pattern.count("*") == 3
