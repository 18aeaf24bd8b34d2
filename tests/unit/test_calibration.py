"""Calibrating a model's raw confidence on recorded outcomes: isotonic, so a threshold on
the calibrated value means P(right)."""

import json
import random

import pytest

from policies.calibration import MIN_OUTCOMES, calibrate, fit_isotonic, fit_models
from producers.training.calibration import recorded_outcomes, write_calibration
from queues.records import LedgerCall, LedgerEntry, ShadowRecord


def test_the_fit_is_monotone_and_reads_off_the_outcome_rates():
    rng = random.Random(3)
    # A model that says 0.95 when it is right 60% of the time: overconfident.
    pairs = [(0.95, rng.random() < 0.6) for _ in range(400)]
    pairs += [(0.5, rng.random() < 0.2) for _ in range(400)]
    points = fit_isotonic(pairs)
    ys = [y for _, y in points]
    assert ys == sorted(ys)
    assert calibrate(points, 0.95) == pytest.approx(0.6, abs=0.06)
    assert calibrate(points, 0.5) == pytest.approx(0.2, abs=0.06)
    assert 0.2 < calibrate(points, 0.7) < 0.6  # between the fitted points
    assert calibrate([], 0.42) == 0.42  # nothing fitted: the raw value


def test_a_model_with_too_few_outcomes_is_not_calibrated():
    few = {"m": [(0.9, True)] * (MIN_OUTCOMES - 1), "n": [(0.9, True)] * MIN_OUTCOMES}
    assert set(fit_models(few)) == {"n"}


def test_outcomes_come_from_labelled_steps_and_shadow_agreement(tmp_path):
    call = LedgerCall(model="cheap-m", accepted=True, confidence=0.8)
    entries = [
        LedgerEntry(step_id=f"s{i}", model="cheap-m", correct=i % 2 == 0, calls=(call,))
        for i in range(30)
    ]
    entries.append(LedgerEntry(step_id="x", model="cheap-m", correct=None, calls=(call,)))
    shadows = [ShadowRecord(accepted_model="mid-m", accepted_confidence=0.7, agree=True)] * 25
    outcomes = recorded_outcomes(entries, shadows)
    assert len(outcomes["cheap-m"]) == 30 and len(outcomes["mid-m"]) == 25
    doc = write_calibration(entries, shadows, tmp_path / "c.json")
    assert set(json.loads((tmp_path / "c.json").read_text())["models"]) == {"cheap-m", "mid-m"}
    assert doc["outcomes"] == {"cheap-m": 30, "mid-m": 25}
