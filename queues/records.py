"""The records the fleet keeps beyond a step's life, beside the envelope they are made from:
the ledger entry (one per finished step), the shadow record (one per shadow comparison),
the dead letter and the cached answer (one shape for the exact and the semantic cache).

Each is a frozen model with a schema version. A record is read back by a fleet of any
version: every field has a default and unknown fields are ignored, so an entry written
before a field existed still reads (``schema_version`` 0: written before versions).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ConfigDict, Field

from queues.base import Frozen, Usage
from queues.messages import Outcome, SemanticHit

SCHEMA_VERSION = 1


READ_ANY_VERSION = ConfigDict(frozen=True, extra="ignore")


class Record(Frozen):
    model_config = READ_ANY_VERSION

    schema_version: int = 0  # as read; 0: written before records had versions

    def to_record(self) -> dict[str, Any]:
        """The record as the stores keep it (JSON types), stamped with this version."""
        return {**self.model_dump(mode="json"), "schema_version": SCHEMA_VERSION}


class Attribution(Record):
    """Who a record is charged to (``AgentStep.attribution``)."""

    step_id: str = ""
    tenant: str = ""
    agent: str = ""
    workflow: str = ""
    session_id: str = ""
    task_kind: str = ""


class LedgerCall(Usage):
    """One model call a step paid for, failed attempts included (part of a ledger entry)."""

    model_config = READ_ANY_VERSION  # Usage (a wire model) forbids extra fields

    model: str = ""
    provider: str = ""
    tier: str | None = None
    cost_usd: float = 0.0
    reserved_usd: float = 0.0
    overshoot_usd: float = 0.0
    batch: bool = False
    accepted: bool = False
    call_id: str = ""  # its record on the bill (the calls stream); "" before call ids
    engine_s: float = 0.0  # a local model's share of its engine's time
    queue_wait_s: float = 0.0  # from hand-over to the tier to the call (queue and batching)
    latency_ms: float = 0.0  # the call itself (a micro-batch's calls share one)
    confidence: float | None = None  # the model's raw confidence (what calibration is fit on)
    history: str = ""  # whole or pruned: which history the tier's cache prices chose


class LedgerEntry(Attribution, Usage):
    """A finished step: who to charge, how it ended, what it cost and each call it paid."""

    model_config = READ_ANY_VERSION  # Usage (a wire model) forbids extra fields

    ts: float = 0.0
    lane: str = "standard"
    status: str = "ok"
    tier: str | None = None
    model: str | None = None
    provider: str | None = None
    cost_usd: float = 0.0
    overshoot_usd: float = 0.0
    prices: str = ""  # the price table's version the costs were computed with
    calls: tuple[LedgerCall, ...] = ()
    latency_ms: float = 0.0
    cache_hit: bool = False
    cached_from: str | None = None
    semantic: SemanticHit | None = None
    escalations: int = 0
    attempts: int = 0
    simulated: bool = False
    correct: bool | None = None
    reason: str = ""
    # The step sent once, uncached and uncompressed, to the frontier model at its list
    # price (policies/savings.py splits the difference by lever); 0 before this existed.
    frontier_usd: float = 0.0
    frontier_model: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """A step is its tenant and its id: two tenants may use the same id."""
        return (self.tenant, self.step_id)


class ShadowRecord(Attribution, Usage):
    """An accepted answer from below the top tier compared with the top tier's answer."""

    model_config = READ_ANY_VERSION  # Usage (a wire model) forbids extra fields

    ts: float = 0.0
    accepted_model: str = ""
    accepted_tier: str = ""
    shadow_model: str = ""
    agree: bool = False
    accepted_confidence: float | None = None  # the accepted answer's raw confidence
    cost_usd: float = 0.0


class AuditRecord(Record):
    """A semantic would-be hit a judge ruled on (policies/hit_audit.py)."""

    ts: float = 0.0
    tenant: str = ""
    step_id: str = ""
    cached_step: str = ""
    scorer: str = ""
    score: float = 0.0
    served: bool = False
    same: bool | None = None  # the judge's word; None when its reply held no number
    judge_model: str = ""
    cost_usd: float = 0.0
    question: str = ""
    cached_question: str = ""


class ExecutionRecord(Record):
    """A producer's word on how one run of a workflow (a session) ended: the report divides
    what the run's steps cost by the runs that succeeded."""

    ts: float = 0.0
    tenant: str = ""
    workflow: str = ""
    session_id: str = ""
    succeeded: bool = False
    note: str = ""


class DeadLetterRecord(Record):
    """A step (or a message that never became one) the fleet gave up on, and why; with its
    envelope when it can be replayed."""

    step_id: str | None = None
    stage: str = ""
    reason: str = ""
    at: float = Field(default_factory=time.time)
    envelope: str | None = None
    raw: str | None = None


class CachedAnswer(Record):
    """An answer the caches serve again: the exact cache keeps it under the request's key,
    the semantic cache beside the question's vector (with the question and embedder)."""

    answer: str = ""
    step_id: str = ""  # the step that paid for it
    tier: str | None = None
    model: str | None = None
    provider: str | None = None
    correct: bool | None = None
    question: str = ""  # semantic only
    embedder: str = ""  # semantic only
    stored_at: float = 0.0

    @classmethod
    def of(cls, outcome: Outcome, step_id: str, **semantic: Any) -> CachedAnswer:
        return cls(
            answer=outcome.answer or "",
            step_id=step_id,
            tier=outcome.tier,
            model=outcome.model,
            provider=outcome.provider,
            correct=outcome.correct,
            **semantic,
        )
