"""The Protocols behind which all I/O sits (the semantic cache's: semantic_ports.py). Real
adapters live in ``providers`` and
``stores``; tests pass plain functions and small in-memory classes."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from policies.budgets import BudgetState, Settlement
from policies.tiers import ModelSpec
from queues.messages import Envelope, Outcome, StepResult
from queues.step import AgentStep, ChatMessage
from queues.topology import Stage


class TryNote(Protocol):
    def __call__(self, event: str, n: int, *, billed: bool | None = None, error: str = "") -> None:
        """``event`` is "try_sent" or "try_failed"; ``n`` counts the call's tries from 1."""
        ...


@dataclass(frozen=True)
class CompletionRequest:
    step_id: str
    model: ModelSpec
    messages: tuple[ChatMessage, ...]
    tools: tuple[dict[str, Any], ...]
    response_schema: dict[str, Any] | None
    max_output_tokens: int
    task_kind: str
    cache_key: str = ""  # the step's prompt version: steps sharing it share a cached prefix
    # Evaluation labels: read only by the simulated and replay providers.
    labels: dict[str, Any] = field(default_factory=dict)
    # Told of each try as it goes out, and of each try that fails (with
    # whether the provider billed it: False for an error status, None when unknown, a
    # timeout): what puts a call cut off mid-retry on the bill as it stood.
    on_try: TryNote | None = field(default=None, compare=False, repr=False)

    @classmethod
    def for_step(
        cls,
        step: AgentStep,
        model: ModelSpec,
        messages: tuple[ChatMessage, ...],
        max_output_tokens: int | None = None,
        on_try: TryNote | None = None,
    ) -> CompletionRequest:
        """The call that answers ``step`` with ``model`` over ``messages`` (maybe compressed)."""
        return cls(
            step_id=step.step_id,
            model=model,
            messages=messages,
            tools=step.tools,
            response_schema=step.response_schema,
            max_output_tokens=max_output_tokens or step.max_output_tokens,
            task_kind=step.task_kind,
            cache_key=step.prompt_version or "",
            labels=dict(step.labels),
            on_try=on_try,
        )


@dataclass(frozen=True)
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    tokens_cached: int = 0  # read from the provider's prompt cache; part of tokens_in
    tokens_cache_write: int = 0  # written to it (billed above the input price by some)
    confidence: float | None = None  # what the provider reports; None when it reports none
    billed_usd: float | None = None  # set when the provider states the bill (replay)
    correct: bool | None = None  # ground truth, known to simulated and replay only
    simulated: bool = False
    engine_s: float = 0.0  # a local model's share of its engine's time for the batch
    # Why the answer ended: "stop" (the model finished), "length" (max_tokens cut it) or
    # "filtered" (the provider's content filter or a refusal). Only "stop" is complete.
    finish: str = "stop"


class Provider(Protocol):
    """A model API. One call answers a micro-batch: the result list matches the requests, an
    exception in place of an answer that failed (TransientError, PermanentError)."""

    name: str
    # Whether it tells each request's ``on_try`` of every try it sends and every try that
    # fails (the HTTP adapters). The bill then counts a call cut off mid-way by the tries
    # that went out; for others, a call noted as started counts as one try out.
    notes_tries: bool

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion | Exception]: ...


class ProviderGate(Protocol):
    """Fleet-wide limits on provider calls: concurrent slots and a circuit breaker."""

    def slot(self, provider: str, model: str | None = None) -> AbstractContextManager[None]:
        """Held for one call; raises a TransientError when no call may be made now."""
        ...

    def failed(self, provider: str) -> None: ...

    def succeeded(self, provider: str) -> None: ...


class Bus(Protocol):
    def send(self, stage: Stage, env: Envelope, *, countdown: float | None = None) -> None: ...

    def finalize(
        self, env: Envelope, outcome: Outcome, *, countdown: float | None = None
    ) -> None: ...

    def remember(self, env: Envelope, outcome: Outcome, *, countdown: float | None = None) -> None:
        """Have the cache worker store an answered step in the semantic cache."""
        ...


class BudgetStore(Protocol):
    def reserve(
        self,
        env: Envelope,
        reservation: str,
        amount_nano: int,
        tokens: int = 0,
        allowance: tuple[int, int] = (0, 0),
    ) -> str | None:
        """Hold the amount in each of the step's scopes; the scope that refuses, or None.
        ``allowance``: nano-dollars and tokens admitted beyond the limits."""
        ...

    def settle(
        self, env: Envelope, reservation: str, actual_nano: int, tokens: int = 0
    ) -> Settlement:
        """Turn the reservation into spend; the settlement says what was held."""
        ...

    def release_step(self, env: Envelope) -> int: ...

    def state(self, tenant: str, session_id: str) -> BudgetState: ...

    def states(self, env: Envelope) -> list[BudgetState]: ...  # session, agent, tenant


class ExactCache(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, entry: dict[str, Any]) -> None: ...

    def drop_prompt_version(self, prompt_version: str) -> int: ...


class Summaries(Protocol):
    """The cheap tier's one-line summaries of a session's dropped exchanges, by unit key."""

    def get(self, tenant: str, session: str) -> dict[str, str]: ...

    def claim(self, tenant: str, session: str, key: str) -> bool:
        """True for the one caller that is to ask for this summary."""
        ...

    def put(self, tenant: str, session: str, key: str, text: str) -> None: ...


class SessionSteps(Protocol):
    """How many distinct steps each session has submitted (the runaway-loop cap)."""

    def count(self, tenant: str, session: str, step_id: str) -> int:
        """Count the step (once, however often its message comes) and return the session's
        count so far."""
        ...


class Ledger(Protocol):
    def append(self, entry: dict[str, Any]) -> None: ...

    def append_many(self, entries: Sequence[dict[str, Any]]) -> None:
        """All of them or, if it raises, none."""
        ...


class Finalized(Protocol):
    """Guards finalize against a redelivered message doing its side effects twice."""

    def done(self, tenant: str, step_id: str) -> bool: ...

    def claim(self, tenant: str, step_id: str) -> bool:
        """Take the step's side effects on; False while another finalize holds them."""
        ...

    def release(self, tenant: str, step_id: str) -> None:
        """Give the claim up without marking the step done (the effects failed)."""
        ...

    def mark(self, tenant: str, step_id: str) -> None: ...


class Deliveries(Protocol):
    """Counts how often the broker has handed a message over: a message put back because its
    worker died holding it comes again, and one that kills every worker it reaches (a
    poison step) must stop coming."""

    def count(self, message_id: str, redelivered: bool) -> int:
        """This delivery's number: 1 for a first delivery, then 2, 3, ..."""
        ...


class DeadLetters(Protocol):
    def put(self, record: dict[str, Any]) -> None: ...


class Results(Protocol):
    """Stores a step's result under its result id, for steps that cannot reach finalize."""

    def store_if_absent(self, result: StepResult) -> bool: ...


# -- the batch lane -------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchPoll:
    """A provider batch job's state: still running (``ended`` False), or ended with an answer
    or an error per custom id (an id missing from ``results`` got neither)."""

    ended: bool
    results: dict[str, Completion | Exception] = field(default_factory=dict)
    error: str | None = None  # the whole job failed (e.g. its input was refused)


class BatchProvider(Provider, Protocol):
    """A provider with a batch API (half price, answers within hours)."""

    def submit_batch(self, job_id: str, requests: Sequence[tuple[str, CompletionRequest]]) -> str:
        """Submit (custom id, request) pairs as one provider job; return the provider's id."""
        ...

    def poll_batch(self, provider_batch_id: str) -> BatchPoll: ...


def supports_batch(provider: Provider) -> bool:
    return callable(getattr(provider, "submit_batch", None)) and callable(
        getattr(provider, "poll_batch", None)
    )


@dataclass(frozen=True)
class ParkedStep:
    """A batch-lane step waiting for (or inside) a provider job, its budget reserved."""

    envelope: str  # Envelope.to_wire()
    reservation: str
    model: str  # the tier table's model name


@dataclass(frozen=True)
class BatchJob:
    job_id: str
    model: str
    provider: str
    state: str  # submitting | submitted
    created_at: float
    provider_batch_id: str | None = None
    submitted_at: float | None = None


class BatchJobs(Protocol):
    """Where the batch lane keeps its state, so that no restart loses a parked step."""

    def park(self, item: ParkedStep, now: float) -> int | None:
        """Add a step to its model's pending set; the set's size, or None if parked before."""
        ...

    def due(self, older_than: float) -> list[str]:
        """Models whose oldest pending step was parked before ``older_than``."""
        ...

    def pending(self, model: str) -> int: ...

    def take(self, model: str, provider: str, limit: int, now: float) -> BatchJob | None:
        """Move up to ``limit`` pending steps of ``model`` into a new job, atomically."""
        ...

    def items(self, job_id: str) -> dict[str, ParkedStep]:
        """A job's steps by custom id (those not yet fanned out)."""
        ...

    def submitted(self, job: BatchJob, provider_batch_id: str, now: float) -> None: ...

    def jobs(self) -> list[BatchJob]: ...

    def done(self, job_id: str, custom_id: str) -> None:
        """One step fanned out; the job is forgotten with its last step."""
        ...

    def exclusive(self, ttl_s: float) -> AbstractContextManager[bool]:
        """Held by one poller at a time (True when this one got it); expires after ttl_s."""
        ...
