"""The messages that travel the fleet with a step, as frozen pydantic models (JSON on the
wire).

The fleet wraps a producer's ``AgentStep`` (queues/step.py) in an ``Envelope`` that only
grows: each stage returns a new envelope with its decision and cost entries appended, so
the full history of a step rides with it. Finalize turns it into the ``StepResult`` a
producer gets back.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import Field

from queues.base import Frozen, Usage
from queues.step import AgentStep, ChatMessage


class StepStatus(StrEnum):
    ok = "ok"
    budget_exceeded = "budget_exceeded"
    dead_lettered = "dead_lettered"


SUBMITTED_AT_WINDOW_S = 24 * 3600


class Submission(Frozen):
    """What a producer publishes: a step, and when it was submitted. Nothing else a
    producer says is taken; the ingress stage makes the envelope (queues/seal.py)."""

    step: AgentStep
    submitted_at: float = Field(default_factory=time.time)


class Decision(Frozen):
    stage: str
    what: str
    why: str
    at: float = Field(default_factory=time.time)


class CostEntry(Usage):
    """One paid (or free) model call made for a step; failed attempts stay on the bill."""

    tier: str
    model: str
    provider: str
    cost_usd: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    # What the call's budget reservation held, and what it cost beyond that (reported, since
    # a hard limit only holds for what was reserved).
    reserved_usd: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    overshoot_usd: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    latency_ms: float = Field(default=0.0, ge=0.0)
    accepted: bool = False
    simulated: bool = False
    batch: bool = False  # answered through the provider's batch API, at its discount
    call_id: str = ""  # the call's record on the bill (the calls stream; queues.keys.call_id)
    engine_s: float = Field(default=0.0, ge=0.0)  # a local model's share of its engine's time
    # From the step's hand-over to this tier (or its retry) to the call: broker queue and
    # micro-batch wait together.
    queue_wait_s: float = Field(default=0.0, ge=0.0)
    # The model's raw confidence in this answer (before calibration), when it gave one.
    confidence: float | None = None
    history: str = ""  # whole or pruned: which history the tier's cache prices chose


class PriorAnswer(Frozen):
    """An earlier answer a second call is compared with (a cross-check or a shadow)."""

    answer: str
    model: str
    tier: str
    correct: bool | None = None  # evaluation label (simulated and replay only): for scorers
    confidence: float | None = None  # the model's raw confidence in it, as reported


class CacheAudit(Frozen):
    """A semantic would-be hit put to a judge (policies/hit_audit.py): the copy of the step
    that carries it asks the judge whether the stored answer answers this step's question."""

    question: str
    cached_question: str
    cached_step: str
    score: float  # the scorer's (cosine or verifier) score of the pair
    scorer: str  # which score: the threshold it adapts is this scorer's own
    served: bool  # whether the step was served the stored answer


class Envelope(Frozen):
    """An AgentStep plus everything the fleet has done with it so far. It only grows."""

    step: AgentStep
    submitted_at: float = Field(default_factory=time.time)
    tier: str | None = None
    model: str | None = None  # the router's pick within the tier; None: the tier's default
    shadow_of: PriorAnswer | None = None  # set on the copy sent to the top tier (shadow eval)
    # Set, with shadow_of (the stored answer), on the copy whose call is a cache audit's judge.
    audit_of: CacheAudit | None = None
    first_answer: PriorAnswer | None = None  # set on a cross-check call: the answer it checks
    attempt: int = Field(default=0, ge=0)  # cascade escalations so far
    retries: int = Field(default=0, ge=0)  # transient-failure retries at the current tier
    cache_key: str | None = Field(default=None, pattern=r"^tf:xc:")
    prompt: tuple[ChatMessage, ...] | None = None  # the compressed request, once compressed
    # Where a tier's cache prices made the call carry the whole history
    # (policies/history_plan.py): the compress stage's pruned prompt, for the next tier.
    pruned: tuple[ChatMessage, ...] | None = None
    history: str = ""  # the history the current tier's call carries: whole or pruned
    economy: bool = False  # past a soft budget: lower tier cap, tighter compression
    max_output_tokens: int | None = None  # the cap the compress stage set (task kind, economy)
    # Set when no model the step may reach holds its prompt: compress it to fit this many
    # tokens, prompt and answer (policies/context_fit.py).
    fit_tokens: int | None = Field(default=None, ge=1)
    closing: bool = False  # a best-effort close after a hard budget refused the step
    judging: bool = False  # this call is a judge's, scoring first_answer (policies/judge.py)
    # Set on a summarize step the compress stage asked for: the key of the dropped exchange
    # it summarizes. Finalize stores its answer there for the session's later calls.
    summary_of: str | None = None
    decisions: tuple[Decision, ...] = ()
    costs: tuple[CostEntry, ...] = ()

    @property
    def request(self) -> tuple[ChatMessage, ...]:
        return self.prompt if self.prompt is not None else self.step.messages

    @property
    def judge_kind(self) -> str | None:
        """Whose number this call asks for: "judge" (an acceptance judge's), "cache_audit"
        (a cache audit's); None for a call that answers the step."""
        if self.audit_of is not None:
            return "cache_audit"
        return "judge" if self.judging else None

    @property
    def output_tokens(self) -> int:
        """max_tokens for this step's calls."""
        return self.max_output_tokens or self.step.max_output_tokens

    @property
    def handed_over_at(self) -> float:
        """When the last stage passed the step on (its submission, before any did)."""
        return self.decisions[-1].at if self.decisions else self.submitted_at

    def decide(self, stage: str, what: str, why: str, **update: Any) -> Envelope:
        decision = Decision(stage=stage, what=what, why=why)
        return self.model_copy(update={"decisions": (*self.decisions, decision), **update})

    def charge(self, entry: CostEntry) -> Envelope:
        return self.model_copy(update={"costs": (*self.costs, entry)})

    def to_wire(self) -> str:
        return self.model_dump_json()

    @classmethod
    def admit(cls, submission: Submission, now: float) -> Envelope:
        """The envelope for a producer's submission: every internal field at its start.
        The submission time is the producer's word, so it is kept only within the last day
        and never in the future (it feeds latency figures, nothing else)."""
        submitted_at = min(now, max(submission.submitted_at, now - SUBMITTED_AT_WINDOW_S))
        return cls(step=submission.step, submitted_at=submitted_at)

    @classmethod
    def from_wire(cls, raw: str | bytes | dict[str, Any]) -> Envelope:
        if isinstance(raw, dict):
            return cls.model_validate(raw)
        return cls.model_validate_json(raw)


class SemanticHit(Frozen):
    """Why the semantic cache served an answer: kept in the ledger for audits of wrong hits."""

    similarity: float
    verifier_score: float
    threshold: float
    question: str  # this step's question
    cached_question: str  # the question the served answer was written for
    embedder: str


class Outcome(Frozen):
    """How a step ended, handed to finalize with the envelope."""

    status: StepStatus
    answer: str | None = None
    tier: str | None = None
    model: str | None = None
    provider: str | None = None
    cache_hit: bool = False
    cached_from: str | None = None
    correct: bool | None = None  # ground truth where the provider knows it (simulated, replay)
    reason: str = ""
    semantic: SemanticHit | None = None  # set when the semantic cache answered


class StepResult(Usage):
    """What a producer gets back from ``AsyncResult(step_id)``: with its tokens (``Usage``)."""

    step_id: str
    status: StepStatus
    tenant: str = ""
    answer: str | None = None
    tier: str | None = None
    model: str | None = None
    provider: str | None = None
    cost_usd: float = Field(default=0.0, ge=0.0)
    overshoot_usd: float = Field(default=0.0, ge=0.0)  # spent beyond reservations
    cache_hit: bool = False
    cached_from: str | None = None  # the step whose answer a cache hit served
    semantic: SemanticHit | None = None
    escalations: int = 0
    latency_ms: float = 0.0
    correct: bool | None = None
    simulated: bool = False
    reason: str = ""
    decisions: tuple[Decision, ...] = ()
