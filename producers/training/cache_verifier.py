"""`tierfleet train cache`: train the semantic cache's hit verifier on labelled question
pairs and calibrate its threshold on pairs it did not train on."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from policies.cache_verifier import (
    Blend,
    Calibration,
    Floats,
    Verifier,
    choose_threshold,
    logit,
    pair_features,
)
from policies.text import words
from producers.training.pairs import Pair, fit_split, seen_in
from workers.ml.cross_encoder import CrossVerifier
from workers.semantic_ports import Embedder, PairScorer


class PairVectors:
    """Each distinct text embedded once (Quora questions repeat across pairs)."""

    def __init__(self, embedder: Embedder, pairs: Sequence[Pair]) -> None:
        texts = sorted({t for p in pairs for t in (p.a, p.b)})
        self.index = {t: i for i, t in enumerate(texts)}
        self.vectors = embedder.embed(texts)

    def of(self, text: str) -> Floats:
        row: Floats = self.vectors[self.index[text]]
        return row


def idf_table(pairs: Sequence[Pair]) -> tuple[dict[str, float], float]:
    """Inverse document frequency over the training questions; unseen words get the rarest."""
    df: Counter[str] = Counter()
    for p in pairs:
        df.update(set(words(p.a)))
        df.update(set(words(p.b)))
    n = 2 * len(pairs)
    idf = {w: round(math.log((n + 1) / (c + 1)), 4) for w, c in df.items() if c >= 2}
    return idf, round(math.log(n + 1), 4)


def feature_rows(
    pairs: Sequence[Pair], vectors: PairVectors, idf: dict[str, float], default_idf: float
) -> Floats:
    return np.stack(
        [pair_features(vectors.of(p.a), vectors.of(p.b), p.a, p.b, idf, default_idf) for p in pairs]
    )


def train_verifier(
    pairs: Sequence[Pair],
    vectors: PairVectors,
    *,
    embedder: str,
    max_wrong_rate: float,
    hidden: int = 256,
    seed: int = 0,
) -> Verifier:
    """Fit the network on most pairs, then choose the threshold on the rest."""
    from sklearn.neural_network import MLPClassifier

    fit, calib = fit_split(pairs)
    idf, default_idf = idf_table(fit)
    x_fit = feature_rows(fit, vectors, idf, default_idf)
    mean = x_fit.mean(axis=0)
    scale = x_fit.std(axis=0) + 1e-6
    net = MLPClassifier(
        hidden_layer_sizes=(hidden,),
        alpha=1e-3,
        max_iter=60,
        early_stopping=len(fit) >= 200,
        random_state=seed,
    )
    net.fit((x_fit - mean) / scale, [p.label for p in fit])
    verifier = Verifier(
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        hidden_w=net.coefs_[0].astype(np.float32),
        hidden_b=net.intercepts_[0].astype(np.float32),
        out_w=net.coefs_[1][:, 0].astype(np.float32),
        out_b=float(net.intercepts_[1][0]),
        idf=idf,
        default_idf=default_idf,
        calibration=Calibration(1.0, max_wrong_rate, 1.0, 0.0, 0),
        embedder=embedder,
        meta={"trained_pairs": len(fit), "hidden": hidden, "seed": seed},
    )
    scores = verifier.score_rows(feature_rows(calib, vectors, idf, default_idf))
    return verifier.with_bound(choose_threshold(scores, [p.label for p in calib], max_wrong_rate))


def blend_cross_verifier(
    features: Verifier,
    pairs: Sequence[Pair],
    vectors: PairVectors,
    encoder: PairScorer,
    trained_on: set[int],
    max_wrong_rate: float,
    folds: int = 5,
) -> CrossVerifier:
    """Blend the feature verifier (trained on ``pairs``' fit split) with a cross-encoder
    (trained on that split too, by `train cross-encoder`) on the calibration split neither
    saw. The threshold comes from out-of-fold blend scores, so the pairs that fit the blend
    do not also vouch for it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    _, calib = fit_split(pairs)
    seen = seen_in(calib, trained_on)
    if seen:
        raise ValueError(
            f"the cross-encoder trained on {seen} of the {len(calib)} calibration pairs: train "
            "it with `tierfleet train cross-encoder` on the same pairs file, which keeps them out"
        )
    labels = np.array([p.label for p in calib])
    feature_scores = features.score_rows(
        feature_rows(calib, vectors, features.idf, features.default_idf)
    )
    cross_logits = np.asarray(encoder.logits([(p.a, p.b) for p in calib]), dtype=np.float32)
    x = np.column_stack([cross_logits, logit(feature_scores)])
    out_of_fold = np.zeros(len(calib))
    for fit_rows, held in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, labels):
        model = LogisticRegression(max_iter=1000).fit(x[fit_rows], labels[fit_rows])
        out_of_fold[held] = model.predict_proba(x[held])[:, 1]
    model = LogisticRegression(max_iter=1000).fit(x, labels)
    blend = Blend(
        cross=float(model.coef_[0][0]),
        features=float(model.coef_[0][1]),
        bias=float(model.intercept_[0]),
    )
    calibration = choose_threshold(out_of_fold.tolist(), labels.tolist(), max_wrong_rate)
    return CrossVerifier(features, encoder, blend, calibration)
