"""The wrong-hit bound the semantic cache keeps from judged would-be hits."""

import math

import pytest

from policies.hit_audit import (
    Judged,
    audit_messages,
    audit_share,
    audited_pair,
    choose_threshold,
    lower_bound,
    sampled,
    upper_bound,
)


def test_the_exact_upper_bound_matches_known_values():
    # None wrong of n: the bound solves (1 - p)^n = alpha.
    assert upper_bound(0, 59, 0.95) == pytest.approx(1 - 0.05 ** (1 / 59), abs=1e-6)
    assert upper_bound(0, 59, 0.95) < 0.05 < upper_bound(0, 58, 0.95)
    # 3 wrong of 100 at 95% one-sided: 0.0757 (Clopper-Pearson tables).
    assert upper_bound(3, 100, 0.95) == pytest.approx(0.0757, abs=5e-4)
    assert upper_bound(0, 0, 0.95) == 1.0 and upper_bound(5, 5, 0.95) == 1.0
    assert lower_bound(0, 50, 0.95) == 0.0
    assert lower_bound(3, 100, 0.95) < 0.03 < upper_bound(3, 100, 0.95)


def judged(scores_and_wrong):
    return [Judged(score, wrong) for score, wrong in scores_and_wrong]


def test_too_few_judged_pairs_keep_the_prior():
    bound = choose_threshold(judged([(0.99, False)] * 20), 0.97, 0.05, 0.95)
    assert (bound.threshold, bound.source) == (0.97, "prior")


def test_enough_right_pairs_certify_a_cut_below_the_prior():
    pairs = [(0.90 + i * 0.001, False) for i in range(80)] + [(0.85, True)] * 10
    bound = choose_threshold(judged(pairs), 0.97, 0.05, 0.95)
    assert bound.source == "audited" and bound.threshold == pytest.approx(0.90)
    assert bound.upper <= 0.05 and bound.wrong == 0 and bound.judged == 80


def test_a_prior_the_traffic_shows_wrong_is_dropped_until_a_cut_is_certified():
    pairs = [(0.98, i % 3 == 0) for i in range(30)]  # a third of the hits above it wrong
    bound = choose_threshold(judged(pairs), 0.97, 0.05, 0.95)
    assert bound.source == "suspended" and math.isinf(bound.threshold)
    assert "nothing served" in bound.why


def test_the_cut_is_the_lowest_whose_bound_holds():
    # Right pairs high up, wrong ones mixed in lower down: the cut stops above them.
    pairs = [(0.95 + i * 0.0005, False) for i in range(90)]
    pairs += [(0.93, True), (0.92, False), (0.91, True)]
    bound = choose_threshold(judged(pairs), 0.99, 0.05, 0.95)
    assert bound.source == "audited" and bound.threshold == pytest.approx(0.95)


def test_ties_are_cut_together():
    pairs = [(0.96, False)] * 70 + [(0.95, False)] * 5 + [(0.95, True)] * 5
    bound = choose_threshold(judged(pairs), 0.99, 0.05, 0.95)
    assert bound.threshold == pytest.approx(0.96)  # 0.95 would take its wrong twins too


def test_every_would_be_hit_is_judged_until_the_warm_up_is_done():
    young = choose_threshold(judged([(0.99, False)] * 5), 0.97, 0.05, 0.95)
    grown = choose_threshold(judged([(0.99, False)] * 25), 0.97, 0.05, 0.95)
    assert audit_share(young, 0.1, 20) == 1.0 and audit_share(grown, 0.1, 20) == 0.1


def test_one_wrong_hit_in_few_drops_the_prior_and_right_ones_bring_it_back():
    first = choose_threshold(judged([(0.99, True), (0.99, False)]), 0.97, 0.05, 0.95)
    assert first.source == "suspended"
    later = choose_threshold(judged([(0.99, True)] + [(0.98, False)] * 25), 0.97, 0.05, 0.95)
    assert later.source == "prior" and later.threshold == 0.97  # 1 in 26: within 5%


def test_the_judges_prompt_carries_both_requests_and_the_stored_answer():
    messages = audit_messages("Can I bring a dog?", "Are pets allowed?", "Small pets, yes.")
    text = messages[-1].text()
    assert "one number between 0 and 1" in messages[0].text()
    assert audited_pair(text) == ("Can I bring a dog?", "Are pets allowed?")
    assert audited_pair("Request:\nx") is None


def test_the_sample_is_stable_and_apart_from_the_shadow_sample():
    ids = [f"step-{i}" for i in range(2000)]
    picked = [i for i in ids if sampled(i, 0.1)]
    assert 150 < len(picked) < 250 and picked == [i for i in ids if sampled(i, 0.1)]
    assert not any(sampled(i, 0.0) for i in ids)
