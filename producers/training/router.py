"""``tierfleet train router``: fit the learned router on recorded outcomes of real models
(RouterBench-format CSVs) and save it as a versioned artifact the classifier loads.

Training uses scikit-learn (the ``train`` extra); scoring does not (policies.learned_router).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from policies.learned_router import (
    ARTIFACT_FORMAT,
    RouterArtifact,
    SuccessModel,
    TextFeatures,
    acceptance_text,
    artifact_from_json,
    artifact_to_json,
    content_version,
)
from workers.providers.replay import ReplayRow

DIGITS = 6  # weights are rounded: the artifact stays small, probabilities move < 1e-5


def train_router(
    rows: Sequence[ReplayRow],
    *,
    trained_on: str,
    max_features: int = 5000,
    c: float = 1.0,
) -> RouterArtifact:
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("training needs scikit-learn: pip install 'tierfleet[train]'") from exc
    if not rows:
        raise ValueError("no training rows")
    # A replayed step's user turn is the prompt: what workers.classify.routing_text reads.
    texts = [r.prompt for r in rows]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=max_features)
    x = vectorizer.fit_transform(texts)
    vocabulary = {str(t): int(i) for t, i in vectorizer.vocabulary_.items()}
    features = TextFeatures(
        vocabulary, tuple(round(float(v), DIGITS) for v in vectorizer.idf_), 2, True
    )
    models: dict[str, SuccessModel] = {}
    costs: dict[str, float] = {}
    for name in sorted(rows[0].outcomes):
        y = [int(r.outcomes[name].correct) for r in rows]
        costs[name] = sum(r.outcomes[name].cost_usd for r in rows) / len(rows)
        if len(set(y)) < 2:  # always right or always wrong: a constant
            p = min(max(sum(y) / len(y), 1e-4), 1 - 1e-4)
            models[name] = SuccessModel((0.0,) * len(vocabulary), math.log(p / (1 - p)))
            continue
        fitted = LogisticRegression(C=c, max_iter=2000).fit(x, y)
        models[name] = SuccessModel(
            tuple(round(float(w), DIGITS) for w in fitted.coef_[0]),
            round(float(fitted.intercept_[0]), DIGITS),
        )
    draft = RouterArtifact("", trained_on, features, models, costs)
    data = artifact_to_json(draft)
    return artifact_from_json({**data, "version": content_version(data)})


def train_acceptance(
    rows: Sequence[ReplayRow], *, trained_on: str, max_features: int = 8000, c: float = 1.0
) -> RouterArtifact:
    """The learned acceptance check: per model, P(its answer is right | prompt, answer), from
    the recorded answers. Same artifact format as the router; each model reads its own
    answer (policies.learned_router.acceptance_text)."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError("training needs scikit-learn: pip install 'tierfleet[train]'") from exc
    if not rows:
        raise ValueError("no training rows")
    names = sorted(rows[0].outcomes)
    texts = {m: [acceptance_text(r.prompt, r.outcomes[m].response) for r in rows] for m in names}
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=max_features)
    vectorizer.fit([t for m in names for t in texts[m]])
    vocabulary = {str(t): int(i) for t, i in vectorizer.vocabulary_.items()}
    features = TextFeatures(
        vocabulary, tuple(round(float(v), DIGITS) for v in vectorizer.idf_), 2, True
    )
    models: dict[str, SuccessModel] = {}
    for name in names:
        y = [int(r.outcomes[name].correct) for r in rows]
        if len(set(y)) < 2:
            p = min(max(sum(y) / len(y), 1e-4), 1 - 1e-4)
            models[name] = SuccessModel((0.0,) * len(vocabulary), math.log(p / (1 - p)))
            continue
        fitted = LogisticRegression(C=c, max_iter=3000).fit(vectorizer.transform(texts[name]), y)
        models[name] = SuccessModel(
            tuple(round(float(w), DIGITS) for w in fitted.coef_[0]),
            round(float(fitted.intercept_[0]), DIGITS),
        )
    costs = {m: sum(r.outcomes[m].cost_usd for r in rows) / len(rows) for m in names}
    data = artifact_to_json(RouterArtifact("", trained_on, features, models, costs))
    return artifact_from_json({**data, "version": content_version(data)})


def save_router(artifact: RouterArtifact, path: Path) -> None:
    data = artifact_to_json(artifact)
    assert data["format"] == ARTIFACT_FORMAT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")))
