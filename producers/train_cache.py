"""`tierfleet train-cache`: train the semantic cache's hit verifier on labelled question
pairs and calibrate its threshold on pairs it did not train on."""

from __future__ import annotations

import gzip
import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from policies.cache_verifier import (
    Calibration,
    Floats,
    Verifier,
    choose_threshold,
    pair_features,
    words,
)
from workers.ports import Embedder


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    label: int


def read_pairs(path: Path) -> list[Pair]:
    """JSON lines {text_a, text_b, label}, gzip or plain; a bad line names its number."""
    opener = gzip.open if path.suffix == ".gz" else open
    pairs = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
                pairs.append(Pair(str(doc["text_a"]), str(doc["text_b"]), int(doc["label"])))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not a labelled pair ({exc})") from exc
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


def split_pairs(
    pairs: Sequence[Pair], held_out: float, seed: int = 0
) -> tuple[list[Pair], list[Pair]]:
    """(kept, held out), split by pair with a fixed seed."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    cut = len(order) - int(len(order) * held_out)
    return [pairs[i] for i in order[:cut]], [pairs[i] for i in order[cut:]]


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
        [pair_features(vectors.of(p.a), vectors.of(p.b), p.a, p.b, idf, default_idf)
         for p in pairs]
    )


def train_verifier(
    pairs: Sequence[Pair],
    vectors: PairVectors,
    *,
    embedder: str,
    max_wrong_rate: float,
    calibration_share: float = 0.2,
    hidden: int = 256,
    seed: int = 0,
) -> Verifier:
    """Fit the network on most pairs, then choose the threshold on the rest."""
    from sklearn.neural_network import MLPClassifier

    fit, calib = split_pairs(pairs, calibration_share, seed)
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
