"""``tierfleet bench cache``: how often the semantic cache would serve a wrong answer, how
many right ones it finds, and how fast a lookup is.

Quality: the verifier is trained on the train pairs (its threshold calibrated on a share of
them for the configured wrong-hit bound), then judged on test pairs it never saw: every test
pair the verifier accepts is a served hit, right when the pair is labelled a duplicate. Plain
cosine thresholds are reported beside it. Speed: lookups (a scoped nearest-neighbour query)
in the embedded Qdrant shard holding 10k and 100k entries.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policies.cache_verifier import Floats, Verifier
from producers.report import percentile
from producers.training.cache_verifier import (
    PairVectors,
    blend_cross_verifier,
    feature_rows,
    train_verifier,
)
from producers.training.pairs import Pair, read_pairs, seen_in, split_pairs
from workers.ml.cross_encoder import CrossVerifier, OnnxCrossEncoder, trained_pair_ids
from workers.ml.embedder import MiniLMEmbedder
from workers.semantic_ports import HitVerifier, SemanticEntry
from workers.stores.vectors import EdgeVectorStore

COSINE_THRESHOLDS = (0.85, 0.9, 0.95, 0.98)


def served(scores: Floats, labels: np.ndarray[Any, Any], threshold: float) -> dict[str, float]:
    """Precision and recall of the hits served at ``threshold``."""
    hit = scores >= threshold
    positives = max(1, int(labels.sum()))
    n = int(hit.sum())
    right = int(labels[hit].sum())
    return {
        "threshold": round(float(threshold), 6),
        "hits": n,
        "precision": round(right / n, 4) if n else 1.0,
        "recall": round(right / positives, 4),
    }


def curve(scores: Floats, labels: np.ndarray[Any, Any], points: int = 40) -> list[dict[str, float]]:
    """Precision/recall at evenly spaced recall levels of the ranking by score."""
    order = np.argsort(-scores, kind="stable")
    y = labels[order]
    right = np.cumsum(y)
    positives = max(1, int(labels.sum()))
    out = []
    for level in np.linspace(0.025, 1.0, points):
        i = int(min(len(y) - 1, np.searchsorted(right, level * positives)))
        out.append(
            {
                "recall": round(float(right[i] / positives), 4),
                "precision": round(float(right[i] / (i + 1)), 4),
                "threshold": round(float(scores[order][i]), 6),
            }
        )
    return out


def quality(
    train: Sequence[Pair],
    test: Sequence[Pair],
    max_wrong_rate: float,
    cross_encoder: Path | None = None,
) -> tuple[dict[str, Any], MiniLMEmbedder, PairVectors, HitVerifier]:
    embedder = MiniLMEmbedder()
    started = time.perf_counter()
    vectors = PairVectors(embedder, [*train, *test])
    embed_s = time.perf_counter() - started
    features = train_verifier(
        train,
        vectors,
        embedder=embedder.id,
        max_wrong_rate=max_wrong_rate,
    )
    labels = np.array([p.label for p in test])
    feature_scores = features.score_rows(
        feature_rows(test, vectors, features.idf, features.default_idf)
    )
    verifier: HitVerifier = features
    scores, calibration = feature_scores, features.calibration
    figures: dict[str, Any] = {"verifier": "features"}
    if cross_encoder is not None:
        blended, scores, figures = with_cross_encoder(
            cross_encoder, features, feature_scores, train, test, vectors, max_wrong_rate
        )
        verifier, calibration = blended, blended.calibration
    cosines = np.array([float(np.dot(vectors.of(p.a), vectors.of(p.b))) for p in test])
    point = served(scores, labels, verifier.threshold)
    figures |= {
        "train_pairs": len(train),
        "test_pairs": len(test),
        "test_duplicates": int(labels.sum()),
        "max_wrong_rate": max_wrong_rate,
        "precision": point["precision"],
        "recall": point["recall"],
        "threshold": point["threshold"],
        "hits": point["hits"],
        "calibration": calibration.__dict__,
        "verifier_curve": curve(scores, labels),
        "cosine": [served(cosines, labels, t) for t in COSINE_THRESHOLDS],
        "cosine_curve": curve(cosines, labels),
        "texts_embedded": len(vectors.index),
        "embed_texts_per_s": round(len(vectors.index) / embed_s, 1),
    }
    return figures, embedder, vectors, verifier


def with_cross_encoder(
    folder: Path,
    features: Verifier,
    feature_scores: Floats,
    train: Sequence[Pair],
    test: Sequence[Pair],
    vectors: PairVectors,
    max_wrong_rate: float,
) -> tuple[CrossVerifier, Floats, dict[str, Any]]:
    """The feature verifier blended with the cross-encoder in ``folder`` (which must not
    have trained on a test pair): the blend, its test scores and its figures."""
    trained_on = trained_pair_ids(folder)
    seen = seen_in(test, trained_on)
    if seen:
        raise ValueError(f"the cross-encoder trained on {seen} of the test pairs")
    encoder = OnnxCrossEncoder.from_dir(folder)
    blended = blend_cross_verifier(features, train, vectors, encoder, trained_on, max_wrong_rate)
    started = time.perf_counter()
    cross_logits = encoder.logits([(p.a, p.b) for p in test])
    cross_s = time.perf_counter() - started
    labels = np.array([p.label for p in test])
    figures = {
        "verifier": "features + cross-encoder",
        "cross_encoder": {
            "id": encoder.id,
            **{k: encoder.meta.get(k) for k in ("trained_pairs", "train_seconds", "device")},
            "pairs_per_s": round(len(test) / cross_s, 1),
        },
        "blend": blended.blend.__dict__,
        "feature_verifier": served(feature_scores, labels, features.threshold),
        "feature_verifier_curve": curve(feature_scores, labels),
    }
    return blended, blended.blend(cross_logits, feature_scores), figures


def verify_latency_ms(
    verifier: HitVerifier, vectors: PairVectors, pairs: Sequence[Pair], n: int = 200
) -> dict[str, float]:
    """Judging three candidates for one question, as the cache worker does per lookup."""
    rows = list(pairs)[: n + 2]
    times = []
    for i in range(min(n, len(rows) - 2)):
        question = rows[i].a
        candidates = [(vectors.of(p.b), p.b) for p in rows[i : i + 3]]
        t0 = time.perf_counter()
        verifier.score_candidates(vectors.of(question), question, candidates)
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "verify_p50_ms": round(percentile(times, 50), 3),
        "verify_p99_ms": round(percentile(times, 99), 3),
    }


def _fill(base: Floats, n: int, rng: np.random.Generator) -> Floats:
    """``n`` unit vectors like real questions: the real ones, then blends of two of them."""
    if n <= len(base):
        return base[:n]
    a = base[rng.integers(0, len(base), n - len(base))]
    b = base[rng.integers(0, len(base), n - len(base))]
    mixed = a + rng.uniform(0.2, 0.8, (len(a), 1)).astype(np.float32) * (b - a)
    mixed /= np.linalg.norm(mixed, axis=1, keepdims=True)
    return np.concatenate([base, mixed]).astype(np.float32)


def lookup_latency(
    base: Floats, sizes: Sequence[int], queries: int = 1000, scopes: int = 1, seed: int = 0
) -> list[dict[str, Any]]:
    """Scoped top-3 lookups in a fresh embedded shard per size, after its index is built.
    With ``scopes`` 1 every entry shares the query's scope (the hardest filter to plan)."""
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        vectors = _fill(base, size, rng)
        folder = Path(tempfile.mkdtemp(prefix="tierfleet-bench-cache-"))
        try:
            store = EdgeVectorStore(folder, vectors.shape[1], optimize_every=10**9)
            now = time.time()
            started = time.perf_counter()
            for start in range(0, size, 2000):
                store.upsert(
                    [
                        SemanticEntry(
                            str(uuid.uuid4()),
                            vectors[i],
                            f"scope-{i % scopes}",
                            "pv",
                            1,
                            now + 3600,
                            {"question": f"q{i}", "answer": "a", "step_id": f"s{i}"},
                        )
                        for i in range(start, min(size, start + 2000))
                    ]
                )
            upsert_s = time.perf_counter() - started
            started = time.perf_counter()
            store.optimize()
            index_s = time.perf_counter() - started
            picks = rng.integers(0, size, queries)
            noise = rng.normal(0, 0.02, (queries, vectors.shape[1])).astype(np.float32)
            times = []
            for q, pick in enumerate(picks):
                query = vectors[pick] + noise[q]
                query /= np.linalg.norm(query)
                t0 = time.perf_counter()
                store.nearest(query, f"scope-{pick % scopes}", 0, now, 3)
                times.append((time.perf_counter() - t0) * 1000)
            store.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        out.append(
            {
                "entries": size,
                "scopes": scopes,
                "upsert_per_s": round(size / upsert_s),
                "index_build_s": round(index_s, 1),
                "lookup_p50_ms": round(percentile(times, 50), 3),
                "lookup_p99_ms": round(percentile(times, 99), 3),
            }
        )
    return out


def embed_latency_ms(
    embedder: MiniLMEmbedder, pairs: Sequence[Pair], n: int = 200
) -> dict[str, float]:
    """Embedding one question, as the cache worker does per step before its lookup."""
    times = []
    for p in list(pairs)[:n]:
        t0 = time.perf_counter()
        embedder.embed([p.a])
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "embed_p50_ms": round(percentile(times, 50), 3),
        "embed_p99_ms": round(percentile(times, 99), 3),
    }


def bench_cache(
    pairs_path: Path,
    train_pairs: Path | None,
    max_wrong_rate: float,
    sizes: Sequence[int],
    test_share: float = 0.3,
    limit: int | None = None,
    cross_encoder: Path | None = None,
) -> dict[str, Any]:
    pairs = read_pairs(pairs_path)
    if train_pairs is None:
        train, test = split_pairs(pairs[:limit] if limit else pairs, test_share)
    else:
        train, test = read_pairs(train_pairs), pairs
        if limit:
            train, test = train[:limit], test[:limit]
    figures, embedder, vectors, verifier = quality(train, test, max_wrong_rate, cross_encoder)
    figures["pairs"] = str(pairs_path)
    figures["train_from"] = str(train_pairs) if train_pairs else f"{1 - test_share:.0%} of pairs"
    latency = lookup_latency(vectors.vectors, sizes)
    figures["latency"] = latency
    largest = max(latency, key=lambda r: int(r["entries"]))
    figures["lookup_entries"] = largest["entries"]
    figures["lookup_p50_ms"] = largest["lookup_p50_ms"]
    figures["lookup_p99_ms"] = largest["lookup_p99_ms"]
    figures.update(embed_latency_ms(embedder, test))
    figures.update(verify_latency_ms(verifier, vectors, test))
    return figures
