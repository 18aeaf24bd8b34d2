"""The one message schema that travels the fleet, as frozen pydantic models (JSON on the wire).

An ``AgentStep`` is what a producer submits: one LLM call inside an agent's loop. The fleet
wraps it in an ``Envelope`` that only grows: each stage returns a new envelope with its
decision and cost entries appended, so the full history of a step rides with it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from enum import StrEnum
from typing import Any, Literal

from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticSerializationError

IDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$"

# What one step may carry. Checked at submit (a clear InvalidStep naming the field) and again
# by every worker that parses a message, so nothing oversized or over-deep reaches a policy
# (a schema nested hundreds deep would otherwise overflow the validator's recursion).
MAX_MESSAGES = 2048
MAX_TOOLS = 128  # OpenAI's own limit
MAX_STEP_BYTES = 4 * 1024 * 1024  # the step as JSON, images included
MAX_SCHEMA_DEPTH = 32  # response schema and tool parameter schemas
MAX_CONTENT_DEPTH = 16  # a content part's nesting
MAX_LABELS = 64


class Lane(StrEnum):
    """Latency classes; each is its own queue per tier, consumed in this order."""

    interactive = "interactive"
    standard = "standard"
    batch = "batch"


class StepStatus(StrEnum):
    ok = "ok"
    budget_exceeded = "budget_exceeded"
    dead_lettered = "dead_lettered"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def json_depth(value: Any, limit: int) -> int:
    """How deep a JSON value nests (a scalar is 0), counted without recursion and given up
    past ``limit`` (the result is then ``limit + 1``)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = (
            node.values()
            if isinstance(node, dict)
            else node
            if isinstance(node, list | tuple)
            else None
        )
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return limit + 1
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _no_deeper_than(value: Any, limit: int, what: str) -> Any:
    if json_depth(value, limit) > limit:
        raise ValueError(f"{what} nests deeper than {limit} levels")
    return value


class FunctionCall(Frozen):
    name: str = Field(min_length=1)
    arguments: str = "{}"


class ToolCall(Frozen):
    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(Frozen):
    """One message in OpenAI chat format, tool calls and tool results included."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _parts_not_too_deep(cls, content: Any) -> Any:
        if isinstance(content, list):
            _no_deeper_than(content, MAX_CONTENT_DEPTH + 1, "content")
        return content

    @model_validator(mode="after")
    def _shape_fits_role(self) -> ChatMessage:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only assistant messages carry tool_calls")
        if self.content is None and not self.tool_calls:
            raise ValueError(f"a {self.role} message needs content")
        return self

    def text(self) -> str:
        """The message's text as a model reads it (content parts and tool calls flattened)."""
        parts: list[str] = []
        if isinstance(self.content, str):
            parts.append(self.content)
        elif self.content:
            parts.extend(str(p.get("text", "")) for p in self.content)
        for call in self.tool_calls or ():
            parts.append(f"{call.function.name}({call.function.arguments})")
        return "\n".join(parts)


def prompt_version_of(messages: tuple[ChatMessage, ...], tools: tuple[dict[str, Any], ...]) -> str:
    """Hash of the static prefix: the leading system/developer messages and the tool schemas."""
    prefix = [m.model_dump(mode="json") for m in leading_system(messages)]
    blob = json.dumps({"system": prefix, "tools": list(tools)}, sort_keys=True)
    return "pv-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def leading_system(messages: tuple[ChatMessage, ...]) -> tuple[ChatMessage, ...]:
    n = 0
    while n < len(messages) and messages[n].role in ("system", "developer"):
        n += 1
    return messages[:n]


class AgentStep(Frozen):
    """One LLM call of an agent, as a producer submits it."""

    step_id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=IDENT_PATTERN)
    tenant: str = Field(pattern=IDENT_PATTERN)
    agent: str = Field(pattern=IDENT_PATTERN)
    workflow: str = Field(default="default", pattern=IDENT_PATTERN)
    session_id: str = Field(pattern=IDENT_PATTERN)
    messages: tuple[ChatMessage, ...] = Field(min_length=1, max_length=MAX_MESSAGES)
    tools: tuple[dict[str, Any], ...] = Field(default=(), max_length=MAX_TOOLS)
    task_kind: str = Field(default="chat", pattern=r"^[a-z][a-z0-9_]{0,39}$")
    response_schema: dict[str, Any] | None = None
    max_output_tokens: int = Field(default=512, ge=1, le=65536)
    lane: Lane = Lane.standard
    prompt_version: str = Field(default="", max_length=128)
    # Evaluation labels (e.g. a simulated difficulty, a replay prompt id). Only simulated and
    # replay providers and the benchmark scorers read them; no routing or acceptance policy may.
    labels: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=MAX_LABELS)

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_not_too_deep(cls, tools: Any) -> Any:
        if isinstance(tools, list | tuple):
            for tool in tools:
                _no_deeper_than(tool, MAX_SCHEMA_DEPTH + 2, "a tool schema")
        return tools

    @field_validator("response_schema", mode="before")
    @classmethod
    def _schema_not_too_deep(cls, schema: Any) -> Any:
        # Before any validation: the JSON Schema meta-validator recurses once per level.
        return _no_deeper_than(schema, MAX_SCHEMA_DEPTH, "the response schema")

    @field_validator("response_schema")
    @classmethod
    def _schema_is_valid(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            try:
                validator_for(schema).check_schema(schema)
            except SchemaError as exc:
                raise ValueError(f"not a valid JSON schema: {exc.message}") from exc
        return schema

    @model_validator(mode="after")
    def _complete(self) -> AgentStep:
        if self.messages[-1].role == "assistant" and not self.messages[-1].tool_calls:
            raise ValueError("messages end with an assistant answer: nothing left to ask")
        if not self.prompt_version:
            object.__setattr__(self, "prompt_version", prompt_version_of(self.messages, self.tools))
        return self

    def attribution(self) -> dict[str, str]:
        """Who a record about this step is charged to, as every ledger-like stream writes it."""
        return {
            "step_id": self.step_id,
            "tenant": self.tenant,
            "agent": self.agent,
            "workflow": self.workflow,
            "session_id": self.session_id,
            "task_kind": self.task_kind,
        }


def check_step_size(step: AgentStep) -> None:
    """Refuse a step bigger than MAX_STEP_BYTES as JSON (it travels in every hop), or one
    that cannot be written as JSON at all (text with a lone surrogate is not UTF-8)."""
    try:
        size = len(step.model_dump_json().encode())
    except PydanticSerializationError as exc:
        raise ValueError(f"the step cannot be sent as JSON: {exc}") from exc
    if size > MAX_STEP_BYTES:
        raise ValueError(f"the step is {size} bytes as JSON; the most is {MAX_STEP_BYTES}")


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


class CostEntry(Frozen):
    """One paid (or free) model call made for a step; failed attempts stay on the bill."""

    tier: str
    model: str
    provider: str
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    # read from the provider's prompt cache; part of tokens_in
    tokens_cached: int = Field(default=0, ge=0)
    tokens_cache_write: int = Field(default=0, ge=0)  # written to it; part of tokens_in
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


class PriorAnswer(Frozen):
    """An earlier answer a second call is compared with (a cross-check or a shadow)."""

    answer: str
    model: str
    tier: str
    correct: bool | None = None  # evaluation label (simulated and replay only): for scorers


class Envelope(Frozen):
    """An AgentStep plus everything the fleet has done with it so far. It only grows."""

    step: AgentStep
    submitted_at: float = Field(default_factory=time.time)
    tier: str | None = None
    model: str | None = None  # the router's pick within the tier; None: the tier's default
    shadow_of: PriorAnswer | None = None  # set on the copy sent to the top tier (shadow eval)
    first_answer: PriorAnswer | None = None  # set on a cross-check call: the answer it checks
    attempt: int = Field(default=0, ge=0)  # cascade escalations so far
    retries: int = Field(default=0, ge=0)  # transient-failure retries at the current tier
    cache_key: str | None = Field(default=None, pattern=r"^tf:xc:")
    prompt: tuple[ChatMessage, ...] | None = None  # the compressed request, once compressed
    economy: bool = False  # past a soft budget: lower tier cap, tighter compression
    max_output_tokens: int | None = None  # the cap the compress stage set (task kind, economy)
    # Set on a summarize step the compress stage asked for: the key of the dropped exchange
    # it summarizes. Finalize stores its answer there for the session's later calls.
    summary_of: str | None = None
    decisions: tuple[Decision, ...] = ()
    costs: tuple[CostEntry, ...] = ()

    @property
    def request(self) -> tuple[ChatMessage, ...]:
        return self.prompt if self.prompt is not None else self.step.messages

    @property
    def output_tokens(self) -> int:
        """max_tokens for this step's calls."""
        return self.max_output_tokens or self.step.max_output_tokens

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


class StepResult(Frozen):
    """What a producer gets back from ``AsyncResult(step_id)``."""

    step_id: str
    status: StepStatus
    tenant: str = ""
    answer: str | None = None
    tier: str | None = None
    model: str | None = None
    provider: str | None = None
    cost_usd: float = Field(default=0.0, ge=0.0)
    overshoot_usd: float = Field(default=0.0, ge=0.0)  # spent beyond reservations
    tokens_in: int = Field(default=0, ge=0)
    tokens_out: int = Field(default=0, ge=0)
    tokens_cached: int = Field(default=0, ge=0)
    tokens_cache_write: int = Field(default=0, ge=0)
    cache_hit: bool = False
    cached_from: str | None = None  # the step whose answer a cache hit served
    semantic: SemanticHit | None = None
    escalations: int = 0
    latency_ms: float = 0.0
    correct: bool | None = None
    simulated: bool = False
    reason: str = ""
    decisions: tuple[Decision, ...] = ()
