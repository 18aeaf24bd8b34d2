"""The semantic cache's hit verifier: is a stored question the same question as this one?

Cosine similarity alone is a weak duplicate detector (on Quora question pairs with MiniLM a
0.95 threshold still serves about 12% wrong answers): "How do I learn Python?" and "How do I
learn Java?" sit close in embedding space. The verifier scores a candidate pair from the two
embeddings (cosine, element-wise |u - v| and u * v) and the texts (word and character
overlap, rare words only one side has, numbers and names that differ, negation, length), with
a small neural network trained on labelled pairs by ``tierfleet train cache``. Its threshold
is chosen on held-out pairs so the share of wrong hits stays under the operator's bound.

Scoring is numpy only; training (producers/training/cache_verifier.py) uses scikit-learn.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from policies.text import words

FORMAT = "tierfleet-cache-verifier/1"
Floats = npt.NDArray[np.float32]

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_NAME = re.compile(r"\b[A-Z][a-z]+\b")
_NEGATION = frozenset(
    [
        "not",
        "no",
        "never",
        "without",
        "nor",
        "cannot",
        "isn't",
        "don't",
        "doesn't",
        "can't",
        "won't",
        "didn't",
        "aren't",
        "shouldn't",
    ]
)
RARE_IDF = 5.0  # a word this rare that only one side has usually changes the question


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _trigrams(text: str) -> set[str]:
    low = text.lower()
    return {low[i : i + 3] for i in range(len(low) - 2)}


def text_features(a: str, b: str, idf: Mapping[str, float], default_idf: float) -> list[float]:
    """Symmetric lexical evidence about two questions (order of a and b does not matter)."""
    wa, wb = words(a), words(b)
    sa, sb = set(wa), set(wb)
    only_a = [idf.get(w, default_idf) for w in sa - sb]
    only_b = [idf.get(w, default_idf) for w in sb - sa]
    total_a = sum(idf.get(w, default_idf) for w in sa)
    total_b = sum(idf.get(w, default_idf) for w in sb)
    shared = sum(idf.get(w, default_idf) for w in sa & sb)
    numbers_a, numbers_b = set(_NUMBER.findall(a)), set(_NUMBER.findall(b))
    names_a, names_b = set(_NAME.findall(a[1:])), set(_NAME.findall(b[1:]))
    negated_a = bool(_NEGATION & set(a.lower().split()))
    negated_b = bool(_NEGATION & set(b.lower().split()))
    share_a = len(sa - sb) / max(1, len(sa))
    share_b = len(sb - sa) / max(1, len(sb))
    return [
        _jaccard(sa, sb),
        _jaccard(_trigrams(a), _trigrams(b)),
        float(numbers_a != numbers_b),
        len(names_a ^ names_b) / max(1, len(names_a | names_b)),
        min(len(wa), len(wb)) / max(1, len(wa), len(wb)),
        float((wa or [""])[0] == (wb or [""])[0]),  # what/how/why/... asks something else
        float(negated_a != negated_b),
        max(share_a, share_b),
        min(share_a, share_b),
        math.log1p(abs(len(wa) - len(wb))),
        min(sum(only_a), sum(only_b)),
        max(sum(only_a), sum(only_b)),
        max([*only_a, *only_b, 0.0]),
        float(sum(1 for x in (*only_a, *only_b) if x > RARE_IDF)),
        shared / max(1e-9, total_a + total_b - shared),  # idf-weighted Jaccard
    ]


def pair_features(
    u: Floats, v: Floats, a: str, b: str, idf: Mapping[str, float], default_idf: float
) -> Floats:
    """One row of the verifier's input: embedding evidence, then text evidence."""
    cos = float(np.dot(u, v))
    lexical = text_features(a, b, idf, default_idf)
    return np.concatenate(
        [np.array([cos, cos * cos, *lexical], dtype=np.float32), np.abs(u - v), u * v]
    ).astype(np.float32)


@dataclass(frozen=True)
class Calibration:
    """The chosen operating point and what it achieved on the calibration pairs."""

    threshold: float
    max_wrong_rate: float
    precision: float
    recall: float
    pairs: int


def choose_threshold(
    scores: Sequence[float] | Floats, labels: Sequence[int], max_wrong_rate: float
) -> Calibration:
    """The lowest threshold whose hits (score >= threshold) are wrong at most
    ``max_wrong_rate`` of the time on these labelled pairs: the most recall the bound allows.
    With no such threshold, one above every score (the semantic layer serves nothing)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    positives = max(1, int(y.sum()))
    hits = np.arange(1, len(s) + 1)
    precision = np.cumsum(y) / hits
    # A cut can only fall between distinct scores: judge each run of ties at its last member.
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    ok = np.flatnonzero(last_of_tie & (precision >= 1.0 - max_wrong_rate))
    if len(ok) == 0:
        top = float(s[0]) if len(s) else 1.0
        return Calibration(math.nextafter(top, math.inf), max_wrong_rate, 1.0, 0.0, len(s))
    i = int(ok[-1])
    return Calibration(
        float(s[i]),
        max_wrong_rate,
        float(precision[i]),
        float(np.cumsum(y)[i] / positives),
        len(s),
    )


def logit(probability: Floats) -> Floats:
    p = np.clip(probability, 1e-6, 1 - 1e-6)
    out: Floats = np.log(p / (1 - p)).astype(np.float32)
    return out


@dataclass(frozen=True)
class Blend:
    """A logistic blend of two judges: the cross-encoder's logit and the feature network's
    logit. They err on different pairs (the network catches a changed number or name the
    cross-encoder reads past; the cross-encoder catches rewordings the features miss), so
    the blend serves more hits at the same bound than either alone."""

    cross: float
    features: float
    bias: float

    def __call__(self, cross_logits: Floats, feature_probability: Floats) -> Floats:
        z = self.cross * cross_logits + self.features * logit(feature_probability) + self.bias
        out: Floats = (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)
        return out


@dataclass(frozen=True)
class Verifier:
    """A trained verifier: feature scaling, a one-hidden-layer network, the IDF table and the
    calibrated threshold. Load it with ``load_verifier``."""

    mean: Floats
    scale: Floats
    hidden_w: Floats
    hidden_b: Floats
    out_w: Floats
    out_b: float
    idf: dict[str, float]
    default_idf: float
    calibration: Calibration
    embedder: str  # the embedding model (and version) it was trained on
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        return self.calibration.threshold

    def features(self, u: Floats, v: Floats, a: str, b: str) -> Floats:
        return pair_features(u, v, a, b, self.idf, self.default_idf)

    def score_rows(self, rows: Floats) -> Floats:
        """P(same question) for rows of ``features``."""
        x = (rows - self.mean) / self.scale
        hidden = np.maximum(x @ self.hidden_w + self.hidden_b, 0.0)
        logits = hidden @ self.out_w + self.out_b
        probability: Floats = (1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))).astype(np.float32)
        return probability

    def score(self, u: Floats, v: Floats, a: str, b: str) -> float:
        return float(self.score_rows(self.features(u, v, a, b)[None, :])[0])

    def score_candidates(
        self, u: Floats, question: str, candidates: Sequence[tuple[Floats, str]]
    ) -> list[float]:
        """P(same question) for each stored (vector, question) against this question."""
        if not candidates:
            return []
        rows = np.stack([self.features(u, v, question, b) for v, b in candidates])
        return [float(x) for x in self.score_rows(rows)]

    def with_bound(self, calibration: Calibration) -> Verifier:
        return Verifier(
            self.mean,
            self.scale,
            self.hidden_w,
            self.hidden_b,
            self.out_w,
            self.out_b,
            self.idf,
            self.default_idf,
            calibration,
            self.embedder,
            self.meta,
        )


def save_verifier(
    verifier: Verifier,
    path: Path,
    extra_meta: Mapping[str, Any] | None = None,
    extra_arrays: Mapping[str, npt.NDArray[Any]] | None = None,
) -> None:
    """One npz file, JSON metadata and arrays, loadable without pickle. A verifier built on
    this one (the cross-encoder blend) adds its own metadata and arrays beside."""
    meta = {
        "format": FORMAT,
        "idf": verifier.idf,
        "default_idf": verifier.default_idf,
        "calibration": verifier.calibration.__dict__,
        "embedder": verifier.embedder,
        "out_b": verifier.out_b,
        **verifier.meta,
        **(extra_meta or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:  # np.savez would append .npz to a name without it
        arrays: dict[str, Any] = {
            "meta": np.array(json.dumps(meta)),
            "mean": verifier.mean,
            "scale": verifier.scale,
            "hidden_w": verifier.hidden_w,
            "hidden_b": verifier.hidden_b,
            "out_w": verifier.out_w,
            **(extra_arrays or {}),
        }
        np.savez(fh, **arrays)


def read_verifier_meta(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(str(data["meta"]))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a cache verifier ({meta.get('format')!r})")
    return meta


def load_verifier(path: Path) -> Verifier:
    """The feature verifier in ``path`` (a blend's file holds one too)."""
    with np.load(path, allow_pickle=False) as data:
        meta = read_verifier_meta(data, path)
        arrays = {
            k: data[k].astype(np.float32)
            for k in ("mean", "scale", "hidden_w", "hidden_b", "out_w")
        }
    known = {"format", "idf", "default_idf", "calibration", "embedder", "out_b", "cross"}
    return Verifier(
        mean=arrays["mean"],
        scale=arrays["scale"],
        hidden_w=arrays["hidden_w"],
        hidden_b=arrays["hidden_b"],
        out_w=arrays["out_w"],
        out_b=float(meta["out_b"]),
        idf={str(k): float(v) for k, v in meta["idf"].items()},
        default_idf=float(meta["default_idf"]),
        calibration=Calibration(**meta["calibration"]),
        embedder=str(meta["embedder"]),
        meta={k: v for k, v in meta.items() if k not in known},
    )
