"""bench cache-audit's replay of a stream of lookups through the cache's own audit policy,
and the support-agent pairs it assembles."""

import numpy as np

from producers.bench.agent_pairs import agent_pairs
from producers.bench.cache_audit import replay
from queues.config.semantic_cache import SemanticCacheConfig


def stream(n: int, wrong_above: float, seed: int = 0):
    """Scores in [0.85, 1); pairs scoring above 0.97 are wrong at ``wrong_above``, below
    it never."""
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.85, 1.0, n)
    wrong = (scores >= 0.97) & (rng.random(n) < wrong_above)
    return scores, (~wrong).astype(int)


def test_a_prior_that_serves_wrong_hits_is_dropped_and_the_late_hits_hold_the_bound():
    scores, labels = stream(4000, 0.3)
    figures = replay(scores, labels, 0.97, "t", SemanticCacheConfig())
    assert figures["second_half_precision"] >= 0.95
    assert figures["judge_calls"] < 0.2 * len(scores)


def test_traffic_the_prior_underrates_brings_the_threshold_down():
    scores, labels = stream(4000, 0.0)
    figures = replay(scores, labels, 0.99, "t", SemanticCacheConfig())
    assert figures["final_source"] == "audited" and figures["final_threshold"] < 0.97
    assert figures["precision"] == 1.0 and figures["recall"] > 0.5


def test_agent_pairs_hold_duplicates_and_hard_negatives():
    pairs = agent_pairs(per_intent=50)
    assert pairs == agent_pairs(per_intent=50)  # seeded
    duplicates = [p for p in pairs if p.label == 1]
    assert 0.4 < len(duplicates) / len(pairs) < 0.6
    assert any(p.label == 0 and p.a.replace("to", "from") == p.b for p in pairs)  # direction
