"""A model's raw confidence (the geometric-mean token probability, a self-report, a judge's
score) made into a calibrated one: P(the answer is right), read off recorded outcomes of
that model by isotonic regression (pool adjacent violators), so a threshold means what it
says. Pure: fit on (raw confidence, right or wrong) pairs, apply by linear interpolation
between the fitted points."""

from __future__ import annotations

import bisect
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

MIN_OUTCOMES = 20  # fewer recorded outcomes than this calibrate nothing


def fit_isotonic(pairs: Sequence[tuple[float, bool]]) -> list[tuple[float, float]]:
    """Points (raw, calibrated), raw ascending, calibrated non-decreasing: the least-squares
    monotone fit of the outcomes (PAV). Each point is a pooled block's mean raw value."""
    same: dict[float, list[float]] = {}  # equal raw values are one block from the start
    for raw, right in pairs:
        block = same.setdefault(raw, [0.0, 0.0, 0.0])
        block[0], block[1], block[2] = block[0] + raw, block[1] + float(right), block[2] + 1
    blocks: list[list[float]] = []  # [sum of raw, sum of outcomes, count]
    for raw in sorted(same):
        blocks.append(same[raw])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] > blocks[-1][1] / blocks[-1][2]:
            last = blocks.pop()
            for i in range(3):
                blocks[-1][i] += last[i]
    return [(s / n, y / n) for s, y, n in blocks]


def calibrate(points: Sequence[tuple[float, float]], raw: float) -> float:
    """The calibrated confidence of ``raw`` (flat beyond the fitted range)."""
    if not points:
        return raw
    xs = [x for x, _ in points]
    i = bisect.bisect_left(xs, raw)
    if i == 0:
        return points[0][1]
    if i == len(points):
        return points[-1][1]
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (raw - x0) / (x1 - x0)


def fit_models(
    outcomes: Mapping[str, Sequence[tuple[float, bool]]],
) -> dict[str, list[list[float]]]:
    """Per model with enough recorded outcomes, its fitted points."""
    return {
        model: [list(p) for p in fit_isotonic(pairs)]
        for model, pairs in sorted(outcomes.items())
        if len(pairs) >= MIN_OUTCOMES
    }


def load_calibration(path: Path) -> dict[str, list[tuple[float, float]]]:
    doc = json.loads(path.read_text())
    return {m: [(float(x), float(y)) for x, y in pts] for m, pts in doc["models"].items()}
