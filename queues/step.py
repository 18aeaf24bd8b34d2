"""What a producer submits: an ``AgentStep``, one LLM call inside an agent's loop, with its
messages, tools, schema, lane and attribution, and the limits it is held to."""

from __future__ import annotations

import hashlib
import json
import uuid
from enum import StrEnum
from typing import Any, Literal

from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticSerializationError

from queues.base import Frozen

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
    # When a hard budget refuses its call: end with no answer ("stop"), or with a short
    # best-effort answer from the cheapest tier within the close allowance ("close").
    on_budget: Literal["stop", "close"] = "stop"
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
