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
import math
from collections.abc import Sequence
from typing import Any, Literal

import openai

from policies.strict_schema import strict_allowed
from queues.settings import Settings
from workers.errors import PermanentError, TransientError
from workers.ports import BatchPoll, Completion, CompletionRequest, ProviderGate
from workers.providers.calls import CallPool, error_for_status

SCHEMA_NAME = "step_answer"
ENDPOINT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
RUNNING = frozenset({"validating", "in_progress", "finalizing", "cancelling"})
# OpenAI's finish_reason as a Completion's finish (tool_calls and function_call end a turn).
FINISH = {"length": "length", "content_filter": "filtered"}


def chat_messages(request: CompletionRequest) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json", exclude_none=True) for m in request.messages]


def confidence_from_logprobs(choice: dict[str, Any]) -> float | None:
    """The geometric mean of the answer's token probabilities: exp(mean log-probability)."""
    content = (choice.get("logprobs") or {}).get("content") or []
    values = [float(t["logprob"]) for t in content if t.get("logprob") is not None]
    return math.exp(sum(values) / len(values)) if values else None


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
        # Strict where the schema allows it: the answer is constrained, not only asked for.
        json_schema: dict[str, Any] = {"name": SCHEMA_NAME, "schema": request.response_schema}
        if strict_allowed(request.response_schema):
            json_schema["strict"] = True
        params["response_format"] = {"type": "json_schema", "json_schema": json_schema}
    if request.cache_key and not compatible:
        params["prompt_cache_key"] = request.cache_key
    return params


def completion_of(response: Any) -> Completion:
    """A Completion from a chat.completion object (the SDK's, or a batch line's dict)."""
    body = response if isinstance(response, dict) else response.model_dump()
    choice = body["choices"][0]
    message = choice["message"]
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
        # Newer API versions report cache writes too; the price table bills them (at the
        # input price for OpenAI's models, which charge nothing extra for writing).
        tokens_cache_write=int(details.get("cache_write_tokens") or 0),
        confidence=confidence_from_logprobs(choice),
        finish=FINISH.get(str(choice.get("finish_reason") or "stop"), "stop"),
    )


class OpenAIChat:
    notes_tries = True

    """``openai`` and ``openai-compatible`` providers: one chat call per step, in parallel."""

    def __init__(
        self,
        name: str,
        client: openai.OpenAI,
        settings: Settings,
        gate: ProviderGate | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self.compatible = name != "openai"
        self.logprobs = settings.request_logprobs
        self.pool = CallPool(name, settings, gate)

    def _call(self, request: CompletionRequest) -> Completion:
        params = chat_params(request, compatible=self.compatible)
        if self.logprobs:
            params["logprobs"] = True
        response = self.client.chat.completions.create(**params)
        return completion_of(response)

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion | Exception]:
        return self.pool.run(self._call, requests)


class OpenAIWithBatch(OpenAIChat):
    """The ``openai`` provider: live chat calls, and the Batch API (a JSONL file in, JSONL
    output and error files out) for the batch lane. Compatible servers have no batch API."""

    def submit_batch(self, job_id: str, requests: Sequence[tuple[str, CompletionRequest]]) -> str:
        lines = [
            json.dumps(
                {
                    "custom_id": custom_id,
                    "method": "POST",
                    "url": ENDPOINT,
                    "body": chat_params(request, compatible=False),
                }
            )
            for custom_id, request in requests
        ]
        data = ("\n".join(lines) + "\n").encode()
        upload = self.pool.once(
            lambda: self.client.files.create(file=(f"{job_id}.jsonl", data), purpose="batch")
        )
        batch = self.pool.once(
            lambda: self.client.batches.create(
                input_file_id=upload.id,
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata={"tierfleet_job": job_id},
            )
        )
        return str(batch.id)

    def find_batch(self, job_id: str, scan: int = 1000) -> str | None:
        """The provider's id of a job already created for ``job_id`` (its metadata says so):
        a submitter that died after creating it must not create a second."""

        def lookup() -> str | None:
            for seen, batch in enumerate(self.client.batches.list(limit=100)):
                if (batch.metadata or {}).get("tierfleet_job") == job_id:
                    return str(batch.id)
                if seen >= scan:
                    break
            return None

        return self.pool.once(lookup)

    def poll_batch(self, provider_batch_id: str) -> BatchPoll:
        batch = self.pool.once(lambda: self.client.batches.retrieve(provider_batch_id))
        if batch.status in RUNNING:
            return BatchPoll(ended=False)
        if batch.status == "failed":
            errors = batch.model_dump().get("errors") or {}
            return BatchPoll(ended=True, error=f"openai batch failed: {errors}")
        results: dict[str, Completion | Exception] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                for line in self._file_text(file_id).splitlines():
                    if line.strip():
                        row = json.loads(line)
                        results[str(row["custom_id"])] = self._result_of(row)
        return BatchPoll(ended=True, results=results)

    def _file_text(self, file_id: str) -> str:
        return str(self.pool.once(lambda: self.client.files.content(file_id)).text)

    def _result_of(self, row: dict[str, Any]) -> Completion | Exception:
        if row.get("error"):
            error = row["error"]
            if error.get("code") == "batch_expired":
                return TransientError(f"openai batch: expired unanswered: {error.get('message')}")
            return PermanentError(f"openai batch: {error.get('code')}: {error.get('message')}")
        response = row["response"]
        if response["status_code"] == 200:
            return completion_of(response["body"])
        message = (response.get("body") or {}).get("error", {}).get("message", "")
        return error_for_status("openai batch", int(response["status_code"]), str(message))
