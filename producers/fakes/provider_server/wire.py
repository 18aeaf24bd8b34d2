"""The providers' wire formats, as the test server writes them: responses, errors, batch
objects and batch result lines (the subset the official SDKs read)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

DEFAULT_ANSWER_WORDS = 24
OPENAI_ERROR_TYPES = {429: "rate_limit_error", 400: "invalid_request_error", 401: "invalid_api_key"}
ANTHROPIC_ERROR_TYPES = {
    429: "rate_limit_error",
    400: "invalid_request_error",
    401: "authentication_error",
    529: "overloaded_error",
}


@dataclass
class Answered:
    """One model answer before it is dressed in a provider's response format."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


EXPIRED_MESSAGE = "The request was not run before the completion window expired."


def openai_batch_line(custom_id: str, kind: str, result: Answered | None) -> dict[str, Any]:
    """One line of an OpenAI batch's output or error file."""
    line: dict[str, Any] = {"id": f"batch_req_{uuid.uuid4().hex[:12]}", "custom_id": custom_id}
    if kind == "expired" or result is None:
        return line | {
            "response": None,
            "error": {"code": "batch_expired", "message": EXPIRED_MESSAGE},
        }
    response = {"status_code": result.status, "request_id": uuid.uuid4().hex, "body": result.body}
    return line | {"response": response, "error": None}


def answered_ok(line: dict[str, Any]) -> bool:
    return bool(line["response"]) and line["response"]["status_code"] == 200


def chat_completion(
    model: str,
    text: str,
    prompt_tokens: int,
    cached: int,
    out: int,
    logprobs: dict[str, Any] | None,
    finish: str = "stop",
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": finish,
                "logprobs": logprobs,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": out,
            "total_tokens": prompt_tokens + out,
            "prompt_tokens_details": {"cached_tokens": cached},
        },
    }


def message(
    model: str,
    content: list[dict[str, Any]],
    stop: str,
    fresh: int,
    read: int,
    written: int,
    out: int,
) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:12]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": fresh,
            "output_tokens": out,
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        },
    }


def message_batch_line(custom_id: str, kind: str, result: Answered | None) -> dict[str, Any]:
    """One line of a message batch's results."""
    if kind == "expired" or result is None:
        outcome: dict[str, Any] = {"type": "expired"}
    elif kind == "errored":
        outcome = {"type": "errored", "error": result.body}
    else:
        outcome = {"type": "succeeded", "message": result.body}
    return {"custom_id": custom_id, "result": outcome}
