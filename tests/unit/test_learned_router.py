"""The learned router: scoring reproduces scikit-learn, routing follows the knob."""

import random

import pytest

from policies.learned_router import artifact_from_json, artifact_to_json, route_learned
from policies.tiers import parse_tier_table
from producers.training.router import train_router
from workers.providers.replay import Recorded, ReplayRow

CHEAP, MID, TOP = "cheap-7b", "mid-70b", "frontier-xl"
TABLE = parse_tier_table(
    {
        "tiers": {
            "cheap": {"rank": 0, "model": CHEAP},
            "mid": {"rank": 1, "model": MID},
            "frontier": {"rank": 2, "model": TOP},
        },
        "models": {
            m: {"provider": "replay", "input_per_mtok": 1, "output_per_mtok": 1}
            for m in (CHEAP, MID, TOP)
        },
    }
)


def outcome_table(n: int = 300, seed: int = 3) -> list[ReplayRow]:
    """Arithmetic prompts the cheap model gets right, proofs only the frontier gets right,
    translations the mid model gets right."""
    rng = random.Random(seed)
    kinds = {
        "add": ("What is {a} plus {b}? Answer with the number.", {CHEAP, MID, TOP}),
        "translate": ("Translate the phrase number {a} into French, politely.", {MID, TOP}),
        "proof": ("Prove that the sequence {a} over {b} converges, rigorously.", {TOP}),
    }
    cost = {CHEAP: 0.0001, MID: 0.0005, TOP: 0.005}
    rows = []
    for i in range(n):
        kind = rng.choice(list(kinds))
        template, right = kinds[kind]
        prompt = template.format(a=rng.randint(1, 99), b=rng.randint(1, 99))
        outcomes = {m: Recorded("x", m in right, cost[m]) for m in (CHEAP, MID, TOP)}
        rows.append(ReplayRow(f"q{i}", prompt, kind, outcomes))
    return rows


def test_scoring_in_plain_python_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    assert sklearn
    rows = outcome_table()
    artifact = train_router(rows, trained_on="synthetic", max_features=200)
    texts = [r.prompt for r in rows]
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=200)
    x = vec.fit_transform(texts)
    fitted = LogisticRegression(max_iter=2000).fit(x, [r.outcomes[MID].correct for r in rows])
    expected = fitted.predict_proba(x)[:, 1]
    ours = [artifact.success(t)[MID] for t in texts]
    assert ours == pytest.approx(list(expected), abs=1e-4)


def test_routes_each_kind_to_the_cheapest_model_that_gets_it_right():
    pytest.importorskip("sklearn")
    artifact = train_router(outcome_table(), trained_on="synthetic")
    picks = {
        prompt: route_learned(artifact, TABLE, prompt, target=0.7)
        for prompt in (
            "What is 12 plus 30? Answer with the number.",
            "Translate the phrase number 7 into French, politely.",
            "Prove that the sequence 3 over 4 converges, rigorously.",
        )
    }
    assert [r.model for r in picks.values()] == [CHEAP, MID, TOP]
    assert [r.tier for r in picks.values()] == ["cheap", "mid", "frontier"]
    assert all(artifact.version in r.why for r in picks.values())
    # The knob: demand near-certainty and even arithmetic goes up a tier or more.
    strict = route_learned(artifact, TABLE, "What is 5 plus 6? Answer with the number.", 0.999)
    assert strict.model != CHEAP or "no model clears" in strict.why


def test_the_artifact_round_trips_and_its_version_names_its_content():
    pytest.importorskip("sklearn")
    rows = outcome_table()
    first = train_router(rows, trained_on="synthetic")
    again = train_router(rows, trained_on="synthetic")
    other = train_router(outcome_table(seed=4), trained_on="synthetic")
    assert first.version == again.version != other.version
    assert artifact_from_json(artifact_to_json(first)) == first
