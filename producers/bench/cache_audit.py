"""``tierfleet bench cache-audit``: does the semantic cache's wrong-hit bound hold on traffic
its prior was not fitted on, once the deployment's own audits set the threshold?

Two kinds of traffic, each split once into a tuning half and a report half:
- Quora question pairs (the dev file in ../shared/data), and
- support-agent questions assembled here (producers/bench/agent_pairs.py).

The prior is chosen on the Quora tuning half alone: the lowest cosine whose hits there are
wrong at most the bound (as `bench cache` chooses a verifier's threshold). Then each report
half is replayed as a stream of lookups, one per pair (the pair's cosine is the best
candidate's score), through the cache's own policy (policies/hit_audit.py): served when the
score clears the current threshold, judged when sampled and within the margin under it,
the threshold recomputed from the judged pairs as the cache worker does. The judge here is
the pair's label; a real judge model errs too, so these figures are the policy's, not a
judge's. Beside it: the prior alone, and the usual cosine 0.95.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policies.cache_verifier import choose_threshold as offline_threshold
from policies.hit_audit import (
    AuditBound,
    Judged,
    audit_share,
    choose_threshold,
    sampled,
    wrong_hit_estimate,
)
from producers.bench.agent_pairs import agent_pairs
from producers.bench.cache import served
from producers.training.pairs import Pair, read_pairs, split_pairs
from queues.config.semantic_cache import SemanticCacheConfig

REFRESH_EVERY = 50  # lookups between recomputations (the worker: every few seconds)


def cosines(pairs: Sequence[Pair]) -> np.ndarray[Any, Any]:
    from workers.ml.embedder import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    texts = sorted({t for p in pairs for t in (p.a, p.b)})
    index = {t: i for i, t in enumerate(texts)}
    vectors = np.concatenate(
        [embedder.embed(texts[i : i + 256]) for i in range(0, len(texts), 256)]
    )
    a = vectors[[index[p.a] for p in pairs]]
    b = vectors[[index[p.b] for p in pairs]]
    out: np.ndarray[Any, Any] = np.einsum("ij,ij->i", a, b)
    return out


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
        floor = min(bound.threshold, prior) - s.semantic_explore_margin
        share = audit_share(bound, s.semantic_audit_share, s.semantic_audit_warmup)
        if score >= floor and sampled(f"{name}:{i}", share):
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
    name: str, pairs: Sequence[Pair], prior: float, s: SemanticCacheConfig
) -> dict[str, Any]:
    scores = cosines(pairs)
    labels = np.array([p.label for p in pairs])
    return {
        "pairs": len(pairs),
        "duplicates": int(labels.sum()),
        "online": replay(scores, labels, prior, name, s),
        "prior_alone": served(scores, labels, prior),
        "cosine_0.95": served(scores, labels, 0.95),
    }


def bench_cache_audit(quora: Path, limit: int | None = None) -> dict[str, Any]:
    s = SemanticCacheConfig()
    tune, report = split_pairs(read_pairs(quora)[:limit], 0.5, seed=1)
    tune_scores = cosines(tune)
    prior = offline_threshold(
        tune_scores, [p.label for p in tune], s.semantic_max_wrong_rate
    ).threshold
    _, agents = split_pairs(agent_pairs(), 0.5, seed=1)
    return {
        "bound": s.semantic_max_wrong_rate,
        "confidence": s.semantic_audit_confidence,
        "audit_share": s.semantic_audit_share,
        "explore_margin": s.semantic_explore_margin,
        "prior_chosen_on_quora_tuning_half": round(float(prior), 4),
        "shipped_prior": s.semantic_prior_threshold,
        "quora_report_half": domain("quora", report, s.semantic_prior_threshold, s),
        "agent_questions_report_half": domain("agents", agents, s.semantic_prior_threshold, s),
    }
