"""The hit verifier's decision: its features, its threshold choice, its artifact."""

import numpy as np
import pytest

from policies.cache_verifier import (
    choose_threshold,
    load_verifier,
    pair_features,
    save_verifier,
    text_features,
)
from workers.testing import cosine_verifier


def test_the_threshold_is_the_lowest_that_keeps_wrong_hits_under_the_bound():
    scores = [0.99, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6]
    labels = [1, 1, 1, 0, 1, 1, 0]
    exact = choose_threshold(scores, labels, 0.0)
    assert (exact.threshold, exact.precision, exact.recall) == (0.9, 1.0, 0.6)
    loose = choose_threshold(scores, labels, 0.2)
    assert loose.threshold == 0.7 and loose.precision == pytest.approx(5 / 6)
    assert loose.recall == 1.0


def test_tied_scores_are_served_together_or_not_at_all():
    # Cutting between the two 0.9s is impossible: both are hits at 0.9, one of them wrong.
    c = choose_threshold([0.95, 0.9, 0.9], [1, 1, 0], 0.1)
    assert c.threshold == 0.95 and c.recall == 0.5


def test_no_threshold_meets_the_bound_so_nothing_is_served():
    c = choose_threshold([0.9, 0.8], [0, 1], 0.05)
    assert c.threshold > 0.9 and c.recall == 0.0


def test_text_features_notice_what_cosine_misses():
    idf = {"python": 6.0, "java": 6.0, "learn": 2.0, "how": 0.5, "do": 1.0, "can": 1.0, "i": 0.3}
    same = text_features("How do I learn Python?", "How can I learn Python?", idf, 8.0)
    swapped = text_features("How do I learn Python?", "How do I learn Java?", idf, 8.0)
    assert same[13] == 0 and swapped[13] == 2  # rare words only one side has
    numbers = text_features("Lose 5 kg in 2 weeks?", "Lose 5 kg in 3 weeks?", idf, 8.0)
    assert numbers[2] == 1.0
    negated = text_features("Is it safe?", "Is it not safe?", idf, 8.0)
    assert negated[6] == 1.0
    assert text_features("a b c", "c d", idf, 8.0) == text_features("c d", "a b c", idf, 8.0)


def test_the_score_rises_with_cosine_and_the_artifact_round_trips(tmp_path):
    verifier = cosine_verifier(4, 0.9)
    u = np.array([1, 0, 0, 0], dtype=np.float32)
    close = np.array([0.96, 0.28, 0, 0], dtype=np.float32)
    far = np.array([0.6, 0.8, 0, 0], dtype=np.float32)
    assert (
        verifier.score(u, close, "a", "b") > verifier.threshold > verifier.score(u, far, "a", "b")
    )
    save_verifier(verifier, tmp_path / "v.bin")
    loaded = load_verifier(tmp_path / "v.bin")
    assert loaded.calibration == verifier.calibration and loaded.embedder == "words@1"
    assert loaded.score(u, close, "a", "b") == pytest.approx(verifier.score(u, close, "a", "b"))
    row = pair_features(u, close, "a", "b", {}, 1.0)
    assert row.shape == (2 + 15 + 8,) and row[0] == pytest.approx(float(np.dot(u, close)))


def test_a_file_that_is_not_a_verifier_is_refused(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, meta=np.array('{"format": "something-else"}'))
    with pytest.raises(ValueError, match="not a cache verifier"):
        load_verifier(path)


def test_the_blend_weighs_both_judges_on_the_logit_scale():
    from policies.cache_verifier import Blend

    blend = Blend(cross=1.0, features=0.5, bias=-1.0)
    cross = np.array([0.0, 3.0, 3.0], dtype=np.float32)
    features = np.array([0.5, 0.5, 0.99], dtype=np.float32)
    got = blend(cross, features)
    logit_f = np.log(features / (1 - features))
    assert got == pytest.approx(1 / (1 + np.exp(-(cross + 0.5 * logit_f - 1.0))), rel=1e-5)
    assert got[0] < got[1] < got[2]  # more belief from either judge, a higher score


def test_extra_metadata_and_arrays_ride_along_without_changing_the_verifier(tmp_path):
    verifier = cosine_verifier(4, 0.9)
    path = tmp_path / "v.npz"
    save_verifier(verifier, path, {"cross": {"k": 1}}, {"blob": np.arange(3, dtype=np.uint8)})
    loaded = load_verifier(path)
    assert loaded.threshold == verifier.threshold and "cross" not in loaded.meta
    with np.load(path, allow_pickle=False) as data:
        assert data["blob"].tolist() == [0, 1, 2]
