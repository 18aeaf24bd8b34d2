"""Anthropic's messages API through the official SDK.

Prompt assembly keeps the provider's prefix cache warm: tool schemas, then the system prompt,
then the conversation, in the order Anthropic caches them, with ``cache_control``
breakpoints on the last tool, the system prompt and the newest message (the next call of the
session extends this one, so it reads everything up to here from the cache). A structured
answer is a forced call of a ``respond`` tool whose input schema is the step's schema.
Usage: ``input_tokens`` excludes cache reads and writes, so ``tokens_in`` adds them back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anthropic

from queues.settings import Settings
from queues.step import ChatMessage, leading_system
from workers.errors import PermanentError, TransientError
from workers.ports import BatchPoll, Completion, CompletionRequest, ProviderGate
from workers.providers.calls import CallPool

RESPOND_TOOL = "respond"
EPHEMERAL = {"type": "ephemeral"}


def _mark(block: dict[str, Any]) -> dict[str, Any]:
    return {**block, "cache_control": EPHEMERAL}


def tool_of(openai_tool: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-format function tool as an Anthropic tool."""
    fn = openai_tool.get("function", openai_tool)
    tool = {"name": fn["name"], "input_schema": fn.get("parameters") or {"type": "object"}}
    if fn.get("description"):
        tool["description"] = fn["description"]
    return tool


def _blocks_of(msg: ChatMessage) -> list[dict[str, Any]]:
    if msg.role == "tool":
        return [{"type": "tool_result", "tool_use_id": msg.tool_call_id, "content": msg.text()}]
    blocks: list[dict[str, Any]] = []
    if isinstance(msg.content, list):
        blocks += [
            {"type": "text", "text": str(p.get("text", ""))} for p in msg.content if p.get("text")
        ]
    elif msg.content:
        blocks.append({"type": "text", "text": msg.content})
    for call in msg.tool_calls or ():
        try:
            args = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError:
            args = {"raw": call.function.arguments}
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.function.name, "input": args}
        )
    return blocks


def conversation(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """OpenAI chat turns as Anthropic turns: tool results become user turns, and adjacent
    turns of one role merge (the API wants them alternating)."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        role = "assistant" if msg.role == "assistant" else "user"
        blocks = _blocks_of(msg) or [{"type": "text", "text": "(empty)"}]
        if out and out[-1]["role"] == role:
            out[-1]["content"] += blocks
        else:
            out.append({"role": role, "content": blocks})
    return out


def message_params(request: CompletionRequest, *, breakpoints: bool) -> dict[str, Any]:
    prefix = leading_system(request.messages)
    mark = _mark if breakpoints else (lambda block: block)
    params: dict[str, Any] = {
        "model": request.model.model_id,
        "max_tokens": request.max_output_tokens,
    }
    tools = [tool_of(t) for t in request.tools]
    if request.response_schema is not None:
        tools.append(
            {
                "name": RESPOND_TOOL,
                "description": "Give the final answer in the required JSON shape.",
                "input_schema": request.response_schema,
            }
        )
        params["tool_choice"] = {"type": "tool", "name": RESPOND_TOOL}
    if tools:
        params["tools"] = [*tools[:-1], mark(tools[-1])]
    if prefix:
        params["system"] = [mark({"type": "text", "text": "\n\n".join(m.text() for m in prefix)})]
    turns = conversation(request.messages[len(prefix) :])
    if turns:
        last = turns[-1]["content"]
        last[-1] = mark(last[-1])
    params["messages"] = turns
    return params


# Anthropic's stop_reason as a Completion's finish (end_turn, stop_sequence, tool_use: done).
STOP = {"max_tokens": "length", "refusal": "filtered", "model_context_window_exceeded": "length"}


def completion_of(message: Any) -> Completion:
    """A Completion from a Message (the SDK's object, or a batch result's dict)."""
    body = message if isinstance(message, dict) else message.model_dump()
    texts, calls, answer = [], [], None
    for block in body.get("content") or []:
        if block.get("type") == "text":
            texts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            if block.get("name") == RESPOND_TOOL:
                answer = json.dumps(block.get("input"))
            else:
                calls.append(
                    {"name": block.get("name"), "arguments": json.dumps(block.get("input"))}
                )
    if answer is None:
        answer = json.dumps(calls) if calls else "".join(texts)
    usage = body.get("usage") or {}
    read = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    return Completion(
        text=answer,
        tokens_in=int(usage.get("input_tokens") or 0) + read + written,
        tokens_out=int(usage.get("output_tokens") or 0),
        tokens_cached=read,
        tokens_cache_write=written,
        finish=STOP.get(str(body.get("stop_reason") or "end_turn"), "stop"),
    )


class AnthropicMessages:
    name = "anthropic"
    notes_tries = True

    def __init__(
        self, client: anthropic.Anthropic, settings: Settings, gate: ProviderGate | None = None
    ) -> None:
        self.client = client
        self.breakpoints = settings.prompt_cache_breakpoints
        self.pool = CallPool(self.name, settings, gate)

    def _call(self, request: CompletionRequest) -> Completion:
        message = self.client.messages.create(
            **message_params(request, breakpoints=self.breakpoints)
        )
        return completion_of(message)

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion | Exception]:
        return self.pool.run(self._call, requests)

    # -- Message Batches ------------------------------------------------------------------

    def submit_batch(self, job_id: str, requests: Sequence[tuple[str, CompletionRequest]]) -> str:
        entries: list[Any] = [
            {"custom_id": custom_id, "params": message_params(r, breakpoints=self.breakpoints)}
            for custom_id, r in requests
        ]
        batch = self.pool.once(lambda: self.client.messages.batches.create(requests=entries))
        return str(batch.id)

    def poll_batch(self, provider_batch_id: str) -> BatchPoll:
        batch = self.pool.once(lambda: self.client.messages.batches.retrieve(provider_batch_id))
        if batch.processing_status != "ended":
            return BatchPoll(ended=False)
        rows = self.pool.once(lambda: list(self.client.messages.batches.results(provider_batch_id)))
        results: dict[str, Completion | Exception] = {}
        for row in rows:
            body = row.model_dump()
            results[str(body["custom_id"])] = _result_of(body["result"])
        return BatchPoll(ended=True, results=results)


TRANSIENT_ERRORS = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})


def _result_of(result: dict[str, Any]) -> Completion | Exception:
    kind = result.get("type")
    if kind == "succeeded":
        return completion_of(result["message"])
    if kind == "errored":
        error = (result.get("error") or {}).get("error") or {}
        text = f"anthropic batch: {error.get('type')}: {error.get('message')}"
        return (
            TransientError(text) if error.get("type") in TRANSIENT_ERRORS else PermanentError(text)
        )
    return TransientError(f"anthropic batch: {kind} unanswered")
