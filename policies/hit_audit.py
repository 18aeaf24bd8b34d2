"""The semantic cache's wrong-hit bound, kept where the cache runs.

A threshold calibrated offline holds on pairs like those it was calibrated on and slips on
traffic of another kind (a verifier fitted on Quora questions serves 17% wrong hits on
technical paraphrases). So the threshold the cache serves at is a property of the deployment:
a sampled share of its would-be hits (candidates scoring at least ``floor``, served or not) is
put to a judge model, which says whether the stored answer answers the new request, and the
served threshold is the lowest score above which the judged pairs' wrong-hit rate has an
exact (Clopper-Pearson) upper confidence bound under the operator's bound. The offline
threshold is only the prior: served at until a cut is certified, and dropped (nothing
served) while the judged pairs above it are wrong more often than the bound allows. A new
deployment's first would-be hits are all judged (``audit_share``), so a prior that does not
fit its traffic is dropped after its first wrong hit, not its tenth.

Judging candidates below the threshold is what lets it come down where the traffic is easy;
judging served hits is what catches it when the traffic turns hard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from policies.text import stable_fraction
from queues.config.semantic_cache import SemanticCacheConfig
from queues.step import ChatMessage

MAX_SHOWN = 2000  # characters of each request and of the stored answer shown to the judge

AUDIT_SYSTEM = (
    "You check a cache. An answer written for an earlier request may be reused for a new "
    "request only if it answers the new request just as well. Read both requests and the "
    "stored answer, then reply with one number between 0 and 1: the probability that the "
    "stored answer is a correct and complete answer to the new request. Reply with the number "
    "only."
)
NEW_MARK = "New request:\n"
EARLIER_MARK = "\n\nEarlier request:\n"
ANSWER_MARK = "\n\nStored answer:\n"


def audit_messages(question: str, cached_question: str, answer: str) -> tuple[ChatMessage, ...]:
    """The judge's call on one would-be hit."""
    body = (
        f"{NEW_MARK}{question[:MAX_SHOWN]}{EARLIER_MARK}{cached_question[:MAX_SHOWN]}"
        f"{ANSWER_MARK}{answer[:MAX_SHOWN]}\n\nProbability:"
    )
    return (
        ChatMessage(role="system", content=AUDIT_SYSTEM),
        ChatMessage(role="user", content=body),
    )


def audited_pair(text: str) -> tuple[str, str] | None:
    """The two requests of an audit call's user text (for a simulated judge); None if it is
    not one."""
    if not text.startswith(NEW_MARK) or EARLIER_MARK not in text or ANSWER_MARK not in text:
        return None
    new, rest = text[len(NEW_MARK) :].split(EARLIER_MARK, 1)
    return new, rest.split(ANSWER_MARK, 1)[0]


def sampled(step_id: str, share: float) -> bool:
    """Whether this step's would-be hit is judged: a stable hash, so a redelivery agrees
    (salted apart from the shadow sample, so the two pick different steps)."""
    return share > 0 and stable_fraction(f"cache-audit:{step_id}") < share


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (n up to a few thousands)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1)
        - math.lgamma(i + 1)
        - math.lgamma(n - i + 1)
        + i * log_p
        + (n - i) * log_q
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def upper_bound(wrong: int, judged: int, confidence: float) -> float:
    """The exact one-sided (Clopper-Pearson) upper confidence bound on a wrong-hit rate
    after ``wrong`` of ``judged`` pairs were wrong: the largest rate under which seeing so few
    wrong has probability at least 1 - confidence."""
    if judged <= 0:
        return 1.0
    if wrong >= judged:
        return 1.0
    alpha = 1.0 - confidence
    low, high = wrong / judged, 1.0
    for _ in range(60):  # bisection: the CDF falls as the rate rises
        mid = (low + high) / 2
        if _binomial_cdf(wrong, judged, mid) > alpha:
            low = mid
        else:
            high = mid
    return high


def bound_within(wrong: int, judged: int, rate: float, confidence: float) -> bool:
    """Whether the upper bound is at most ``rate``, from one CDF (no bisection): the bound
    is the rate at which the CDF falls to 1 - confidence, and the CDF falls as the rate
    rises. At or past the rate itself the CDF is about a half, so the answer is no."""
    if judged <= 0 or wrong >= judged * rate:
        return False
    return _binomial_cdf(wrong, judged, rate) <= 1.0 - confidence


def lower_bound(wrong: int, judged: int, confidence: float) -> float:
    """The matching lower bound: the smallest rate under which seeing so many wrong has
    probability at least 1 - confidence."""
    if judged <= 0 or wrong <= 0:
        return 0.0
    return 1.0 - upper_bound(judged - wrong, judged, confidence)


@dataclass(frozen=True)
class Judged:
    """One would-be hit the judge ruled on: its score and whether serving it was wrong."""

    score: float
    wrong: bool


@dataclass(frozen=True)
class AuditBound:
    """The threshold the cache serves at, and the evidence for it."""

    threshold: float  # math.inf: nothing is served
    source: str  # "prior", "audited" or "suspended"
    judged: int  # judged pairs at or above the threshold (at or above the prior for "prior")
    wrong: int
    upper: float  # the upper confidence bound on their wrong-hit rate
    why: str


def choose_threshold(
    judged: Sequence[Judged],
    prior: float,
    max_wrong_rate: float,
    confidence: float,
) -> AuditBound:
    """The lowest cut whose judged pairs at or above it have a wrong-hit upper bound within
    ``max_wrong_rate`` (the exact bound itself asks for enough of them: at least 59 with
    none wrong for 5% at 95% confidence). Failing that, the prior while the judged pairs
    above it are wrong no more often than the bound; once they are, nothing is served until
    a cut is certified."""
    ranked = sorted(judged, key=lambda j: -j.score)
    wrong = 0
    cut: tuple[float, int, int] | None = None  # (score, judged, wrong) of the lowest so far
    for i, pair in enumerate(ranked):
        wrong += pair.wrong
        n = i + 1
        if n < len(ranked) and ranked[i + 1].score == pair.score:
            continue  # a cut falls between distinct scores
        if bound_within(wrong, n, max_wrong_rate, confidence):
            cut = (pair.score, n, wrong)
    if cut is not None:
        score, n, bad = cut
        bound = upper_bound(bad, n, confidence)
        why = (
            f"{bad} wrong of {n} judged at or above {score:.4f}: "
            f"{confidence:.0%} upper bound {bound:.2%} <= {max_wrong_rate:.0%}"
        )
        return AuditBound(score, "audited", n, bad, bound, why)
    above = [j for j in ranked if j.score >= prior]
    bad = sum(j.wrong for j in above)
    upper = upper_bound(bad, len(above), confidence)
    if bad > max_wrong_rate * len(above):
        why = (
            f"{bad} wrong of {len(above)} judged at or above the prior {prior:.4f}: more than "
            f"{max_wrong_rate:.0%}; nothing served until a cut is certified"
        )
        return AuditBound(math.inf, "suspended", len(above), bad, upper, why)
    why = f"no cut certified by the {len(judged)} judged pairs: the prior {prior:.4f}"
    return AuditBound(prior, "prior", len(above), bad, upper, why)


def audit_share(bound: AuditBound, share: float, warmup: int) -> float:
    """Every would-be hit is judged until ``warmup`` pairs at or above the threshold have
    been (a new deployment's first hits are the least known), then the sampled share."""
    return 1.0 if bound.judged < warmup else share


def to_judge(
    score: float, bound: AuditBound, prior: float, key: str, s: SemanticCacheConfig
) -> bool:
    """Whether a would-be hit scoring ``score`` goes to the judge: within the explore margin
    under the served threshold (or the prior, if lower), and sampled (all in the warm-up)."""
    floor = min(bound.threshold, prior) - s.semantic_explore_margin
    share = audit_share(bound, s.semantic_audit_share, s.semantic_audit_warmup)
    return score >= floor and sampled(key, share)


@dataclass(frozen=True)
class WrongHitEstimate:
    """The wrong-hit rate of served hits as the judge saw them, with its exact interval."""

    judged: int
    wrong: int
    rate: float
    low: float
    high: float
    confidence: float


def wrong_hit_estimate(wrong: Sequence[bool], confidence: float = 0.95) -> WrongHitEstimate:
    """The share of judged served hits that were wrong, with a two-sided Clopper-Pearson
    interval at ``confidence``."""
    n, k = len(wrong), sum(wrong)
    tail = (1 + confidence) / 2
    return WrongHitEstimate(
        n, k, k / n if n else 0.0, lower_bound(k, n, tail), upper_bound(k, n, tail), confidence
    )
