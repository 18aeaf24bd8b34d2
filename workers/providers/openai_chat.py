"""OpenAI chat completions through the official SDK; also any OpenAI-compatible server
(vLLM, Ollama, TGI) through the same SDK pointed at its ``base_url``.

The request keeps the step's messages in order, so the static prefix (system prompt, tool
schemas, then the append-only history) is byte-stable across a session's calls and OpenAI's
automatic prefix cache serves it; ``prompt_cache_key`` (the step's prompt version) steers
calls that share a prefix to the same cache. Usage: ``prompt_tokens`` includes
``prompt_tokens_details.cached_tokens``, which is exactly the fleet's ``tokens_in``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import openai

from queues.settings import Settings
from workers.ports import Completion, CompletionRequest
from workers.providers.calls import CallPool

SCHEMA_NAME = "step_answer"


def chat_messages(request: CompletionRequest) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json", exclude_none=True) for m in request.messages]


def chat_params(request: CompletionRequest, *, compatible: bool) -> dict[str, Any]:
    """The chat.completions.create arguments for one request."""
    params: dict[str, Any] = {
        "model": request.model.model_id,
        "messages": chat_messages(request),
    }
    # Self-hosted servers know max_tokens; OpenAI's newer models only max_completion_tokens.
    params["max_tokens" if compatible else "max_completion_tokens"] = request.max_output_tokens
    if request.tools:
        params["tools"] = list(request.tools)
    if request.response_schema is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "schema": request.response_schema},
        }
    if request.cache_key and not compatible:
        params["prompt_cache_key"] = request.cache_key
    return params


def completion_of(response: Any) -> Completion:
    """A Completion from a chat.completion object (the SDK's, or a batch line's dict)."""
    body = response if isinstance(response, dict) else response.model_dump()
    message = body["choices"][0]["message"]
    text = message.get("content") or ""
    if message.get("tool_calls"):
        calls = [
            {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
            for c in message["tool_calls"]
        ]
        text = json.dumps({"content": text, "tool_calls": calls}) if text else json.dumps(calls)
    usage = body.get("usage") or {}
    details = usage.get("prompt_tokens_details") or {}
    return Completion(
        text=text,
        tokens_in=int(usage.get("prompt_tokens") or 0),
        tokens_out=int(usage.get("completion_tokens") or 0),
        tokens_cached=int(details.get("cached_tokens") or 0),
    )


class OpenAIChat:
    """``openai`` and ``openai-compatible`` providers: one chat call per step, in parallel."""

    def __init__(self, name: str, client: openai.OpenAI, settings: Settings) -> None:
        self.name = name
        self.client = client
        self.compatible = name != "openai"
        self.pool = CallPool(name, settings)

    def _call(self, request: CompletionRequest) -> Completion:
        response = self.client.chat.completions.create(
            **chat_params(request, compatible=self.compatible)
        )
        return completion_of(response)

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion | Exception]:
        return self.pool.run(self._call, requests)
