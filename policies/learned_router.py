"""The learned router: for a step and each model, the probability that the model's answer
is acceptable, from the prompt's text alone (known before any call). It routes to the
cheapest model whose predicted success clears ``target``, the one knob that trades cost for
quality, and to the most likely model when none does.

The predictor is a TF-IDF text representation with one logistic regression per model,
trained offline by ``tierfleet train router`` (scikit-learn) and saved as a versioned JSON
artifact. Scoring here is plain Python over that artifact, so a classifier worker needs
neither scikit-learn nor numpy, and reproduces scikit-learn's probabilities exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.tiers import TierTable

# scikit-learn's default token pattern: words of two or more word characters.
TOKEN = re.compile(r"(?u)\b\w\w+\b")
ARTIFACT_FORMAT = "tierfleet-router/1"


@dataclass(frozen=True)
class TextFeatures:
    """scikit-learn's TfidfVectorizer transform (lowercase, word n-grams, sublinear tf, l2)."""

    vocabulary: dict[str, int]
    idf: tuple[float, ...]
    ngram_max: int = 2
    sublinear_tf: bool = True

    def terms(self, text: str) -> list[str]:
        words = TOKEN.findall(text.lower())
        out = list(words)
        for n in range(2, self.ngram_max + 1):
            out += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        return out

    def transform(self, text: str) -> dict[int, float]:
        counts = Counter(self.vocabulary[t] for t in self.terms(text) if t in self.vocabulary)
        weights = {
            i: ((1.0 + math.log(c)) if self.sublinear_tf else float(c)) * self.idf[i]
            for i, c in counts.items()
        }
        norm = math.sqrt(sum(w * w for w in weights.values()))
        return {i: w / norm for i, w in weights.items()} if norm else {}


@dataclass(frozen=True)
class SuccessModel:
    coef: tuple[float, ...]  # one weight per vocabulary entry
    intercept: float

    def probability(self, x: dict[int, float]) -> float:
        z = self.intercept + sum(w * self.coef[i] for i, w in x.items())
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


@dataclass(frozen=True)
class RouterArtifact:
    version: str
    trained_on: str  # what it learned from, for the record
    features: TextFeatures
    models: dict[str, SuccessModel]
    cost_per_query: dict[str, float]  # mean recorded cost per model on the training data

    def success(self, text: str) -> dict[str, float]:
        x = self.features.transform(text)
        return {name: model.probability(x) for name, model in self.models.items()}

    def success_of(self, model: str, text: str) -> float | None:
        """One model's predicted success on ``text``; None for a model it was not fitted on."""
        fitted = self.models.get(model)
        return None if fitted is None else fitted.probability(self.features.transform(text))


def acceptance_text(prompt: str, answer: str) -> str:
    """What the learned acceptance check reads: the prompt, then the answer's words marked
    as the answer's (``ans_...``), so the two never share a feature."""
    return prompt + "\n" + " ".join("ans_" + w for w in TOKEN.findall(answer.lower()))


@dataclass(frozen=True)
class LearnedRoute:
    tier: str
    model: str
    why: str


def route_learned(
    artifact: RouterArtifact, table: TierTable, text: str, target: float
) -> LearnedRoute:
    """The cheapest table model whose predicted success is at least ``target``."""
    known = [m for m in artifact.models if m in table.models]
    if not known:
        raise ValueError("the router artifact predicts none of the tier table's models")
    success = artifact.success(text)
    by_cost = sorted(known, key=lambda m: artifact.cost_per_query.get(m, math.inf))
    chosen = next((m for m in by_cost if success[m] >= target), None)
    if chosen is None:
        chosen = max(known, key=lambda m: success[m])
        why = f"no model clears {target:.2f}; most likely {chosen} ({success[chosen]:.2f})"
    else:
        why = f"cheapest with p(success) >= {target:.2f}: {chosen} ({success[chosen]:.2f})"
    return LearnedRoute(
        table.tier_of_model(chosen), chosen, f"learned router {artifact.version}: {why}"
    )


def artifact_to_json(artifact: RouterArtifact) -> dict[str, Any]:
    return {
        "format": ARTIFACT_FORMAT,
        "version": artifact.version,
        "trained_on": artifact.trained_on,
        "features": {
            "vocabulary": artifact.features.vocabulary,
            "idf": list(artifact.features.idf),
            "ngram_max": artifact.features.ngram_max,
            "sublinear_tf": artifact.features.sublinear_tf,
        },
        "models": {
            name: {"coef": list(m.coef), "intercept": m.intercept}
            for name, m in artifact.models.items()
        },
        "cost_per_query": artifact.cost_per_query,
    }


def artifact_from_json(data: dict[str, Any]) -> RouterArtifact:
    if data.get("format") != ARTIFACT_FORMAT:
        raise ValueError(f"not a router artifact of format {ARTIFACT_FORMAT}: {data.get('format')}")
    f = data["features"]
    return RouterArtifact(
        version=str(data["version"]),
        trained_on=str(data.get("trained_on", "")),
        features=TextFeatures(
            {str(k): int(v) for k, v in f["vocabulary"].items()},
            tuple(float(x) for x in f["idf"]),
            int(f.get("ngram_max", 2)),
            bool(f.get("sublinear_tf", True)),
        ),
        models={
            name: SuccessModel(tuple(float(w) for w in m["coef"]), float(m["intercept"]))
            for name, m in data["models"].items()
        },
        cost_per_query={str(k): float(v) for k, v in data["cost_per_query"].items()},
    )


def content_version(data: dict[str, Any]) -> str:
    """A version that names the artifact's content: equal weights, equal version."""
    body = json.dumps({k: v for k, v in data.items() if k != "version"}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:12]


def load_router(path: Path) -> RouterArtifact:
    return artifact_from_json(json.loads(path.read_text()))
