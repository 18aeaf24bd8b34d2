"""``tierfleet bench cache-audit``: does the semantic cache's wrong-hit bound hold on traffic
its prior was not fitted on, once the deployment's own audits set the threshold?

Two kinds of traffic, each split once into a tuning half and a report half:
- Quora question pairs (the dev file in ../shared/data), and
- support-agent questions assembled here (producers/bench/agent_pairs.py).

Two scores: the embeddings' cosine (the default), whose prior is the lowest cosine whose
hits on the Quora tuning half are wrong at most the bound; and the feature verifier trained
and calibrated on that half (`tierfleet train cache`), its threshold the prior. Then each
report half is replayed as a stream of lookups, one per pair (the pair's score is the best
candidate's), through the cache's own policy (policies/hit_audit.py): served when the
score clears the current threshold, judged when sampled and within the margin under it,
the threshold recomputed from the judged pairs as the cache worker does. The judge here is
the pair's label; a real judge model errs too, so these figures are the policy's, not a
judge's. Beside it: the prior alone, and for Quora the usual cosine 0.95.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policies.cache_verifier import choose_threshold as offline_threshold
from policies.hit_audit import (
    AuditBound,
    Judged,
    choose_threshold,
    to_judge,
    wrong_hit_estimate,
)
from producers.bench.agent_pairs import agent_pairs
from producers.bench.cache import served
from producers.training.cache_verifier import PairVectors, feature_rows, train_verifier
from producers.training.pairs import Pair, read_pairs, split_pairs
from queues.config.semantic_cache import SemanticCacheConfig

REFRESH_EVERY = 50  # lookups between recomputations (the worker: every few seconds)


def cosines(pairs: Sequence[Pair], vectors: PairVectors) -> np.ndarray[Any, Any]:
    return np.array([float(np.dot(vectors.of(p.a), vectors.of(p.b))) for p in pairs])


def labels_of(pairs: Sequence[Pair]) -> np.ndarray[Any, Any]:
    return np.array([p.label for p in pairs])


def replay(
    scores: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], prior: float, name: str,
    s: SemanticCacheConfig,
) -> dict[str, Any]:  # fmt: skip
    """The stream through the online policy: what it served, judged and ended at."""
    judged: deque[Judged] = deque(maxlen=s.semantic_audit_window)
    bound: AuditBound = choose_threshold([], prior, s.semantic_max_wrong_rate, 0.95)
    wrong_served: list[bool] = []
    late: list[bool] = []  # the second half: after the audits had time to act
    calls = 0
    for i, (score, label) in enumerate(zip(scores.tolist(), labels.tolist(), strict=True)):
        if i % REFRESH_EVERY == 0:
            bound = choose_threshold(
                list(judged), prior, s.semantic_max_wrong_rate, s.semantic_audit_confidence
            )
        if score >= bound.threshold:
            wrong_served.append(label == 0)
            if i >= len(scores) // 2:
                late.append(label == 0)
        if to_judge(score, bound, prior, f"{name}:{i}", s):
            judged.append(Judged(score, label == 0))
            calls += 1
    overall, second = wrong_hit_estimate(wrong_served), wrong_hit_estimate(late)
    positives = max(1, int(labels.sum()))
    return {
        "lookups": len(scores),
        "hits": overall.judged,
        "precision": round(1 - overall.rate, 4),
        "wrong_rate_interval": [round(overall.low, 4), round(overall.high, 4)],
        "recall": round((overall.judged - overall.wrong) / positives, 4),
        "second_half_precision": round(1 - second.rate, 4),
        "second_half_hits": second.judged,
        "judge_calls": calls,
        "judge_calls_per_hit": round(calls / max(1, overall.judged), 3),
        "final_threshold": None if bound.threshold == float("inf") else round(bound.threshold, 4),
        "final_source": bound.source,
    }


def domain(
    name: str, scores: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], prior: float,
    s: SemanticCacheConfig,
) -> dict[str, Any]:  # fmt: skip
    return {
        "pairs": len(scores),
        "duplicates": int(labels.sum()),
        "online": replay(scores, labels, prior, name, s),
        "prior_alone": served(scores, labels, prior),
    }


def bench_cache_audit(
    quora: Path, limit: int | None = None, verifier: bool = True
) -> dict[str, Any]:
    from workers.ml.embedder import MiniLMEmbedder

    s = SemanticCacheConfig()
    rate = s.semantic_max_wrong_rate
    tune, report = split_pairs(read_pairs(quora)[:limit], 0.5, seed=1)
    agent_tune, agents = split_pairs(agent_pairs(), 0.5, seed=1)
    embedder = MiniLMEmbedder()
    vectors = PairVectors(embedder, [*tune, *report, *agent_tune, *agents])
    report_labels, agent_labels = labels_of(report), labels_of(agents)
    tune_labels = [p.label for p in tune]
    prior = offline_threshold(cosines(tune, vectors), tune_labels, rate).threshold
    figures: dict[str, Any] = {
        "bound": rate,
        "confidence": s.semantic_audit_confidence,
        "audit_share": s.semantic_audit_share,
        "audit_warmup": s.semantic_audit_warmup,
        "explore_margin": s.semantic_explore_margin,
        "tuning_pairs": len(tune),
        "cosine": {
            "prior_chosen_on_quora_tuning_half": round(float(prior), 4),
            "shipped_prior": s.semantic_prior_threshold,
            "quora_report_half": domain(
                "quora", cosines(report, vectors), report_labels, s.semantic_prior_threshold, s
            ),
            "agent_questions": domain(
                "agents", cosines(agents, vectors), agent_labels, s.semantic_prior_threshold, s
            ),
            "cosine_0.95_quora": served(cosines(report, vectors), report_labels, 0.95),
        },
    }
    if verifier:  # the feature verifier, trained and calibrated on a tuning half
        for name, fitted_on, replayed in (
            ("verifier", tune, {"quora_report_half": report, "agent_questions": agents}),
            # As a deployment would after `cache audit --out` and `train cache --pairs`: a
            # verifier fitted on judged pairs of its own kind of traffic.
            ("verifier_fitted_on_agent_questions", agent_tune, {"agent_questions": agents}),
        ):
            figures[name] = replay_verifier(name, fitted_on, replayed, vectors, embedder.id, s)
    return figures


def replay_verifier(
    name: str,
    fitted_on: Sequence[Pair],
    replayed: Mapping[str, Sequence[Pair]],
    vectors: PairVectors,
    embedder: str,
    s: SemanticCacheConfig,
) -> dict[str, Any]:
    rate = s.semantic_max_wrong_rate
    features = train_verifier(fitted_on, vectors, embedder=embedder, max_wrong_rate=rate)

    def scored(pairs: Sequence[Pair]) -> np.ndarray[Any, Any]:
        rows = feature_rows(pairs, vectors, features.idf, features.default_idf)
        out: np.ndarray[Any, Any] = features.score_rows(rows)
        return out

    prior = features.threshold
    out: dict[str, Any] = {"fitted_on_pairs": len(fitted_on), "prior": round(prior, 6)}
    for traffic, pairs in replayed.items():
        out[traffic] = domain(f"{name}:{traffic}", scored(pairs), labels_of(pairs), prior, s)
    return out
