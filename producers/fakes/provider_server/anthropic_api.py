"""The Anthropic routes of the test server: ``/v1/messages`` and ``/v1/messages/batches``,
over the shared account."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from producers.fakes.provider_server.account import Account, BatchJob, scripted_error
from producers.fakes.provider_server.answers import json_answer, malformed, text_answer
from producers.fakes.provider_server.faults import Fault
from producers.fakes.provider_server.wire import (
    ANTHROPIC_ERROR_TYPES,
    Answered,
    message,
    message_batch_line,
    text_of,
)


def error(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    kind = kind or ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _block(obj: dict[str, Any], prefix: str = "") -> tuple[str, bool]:
    """A content block as the prompt cache sees it, and whether it carries a cache mark."""
    plain = {k: v for k, v in obj.items() if k != "cache_control"}
    return prefix + json.dumps(plain, separators=(",", ":")), "cache_control" in obj


def _prompt_blocks(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """Tools, then system, then messages: the order Anthropic caches a prefix in."""
    texts = [_block(t) for t in body.get("tools") or []]
    system = body.get("system")
    if isinstance(system, str):
        texts.append((system, False))
    elif isinstance(system, list):
        texts += [_block(part, "system:") for part in system]
    for msg in body["messages"]:
        given = msg.get("content")
        parts = [{"type": "text", "text": given}] if isinstance(given, str) else given
        texts += [_block(part, f"{msg.get('role')}:") for part in parts or []]
    return texts


@dataclass
class AnthropicApi:
    account: Account
    name = "anthropic"

    def message(self, body: dict[str, Any], fault: Fault | None, *, batch: bool) -> Answered:
        acct = self.account
        if fault is not None and fault.status:
            acct.stats[f"anthropic.error.{fault.status}"] += 1
            return scripted_error(fault, error)
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        if not messages or "max_tokens" not in body:
            return Answered(400, error(400, "messages and max_tokens are required"))
        blocks = acct.blocks(_prompt_blocks(body))
        total = sum(b.tokens for b in blocks)
        read, written = acct.cache("anthropic").anthropic(model, blocks)
        prompt = text_of(messages[-1].get("content"))
        broken = fault is not None and fault.malformed
        choice = body.get("tool_choice") or {}
        if choice.get("type") == "tool":
            content, out = self._tool_use(body, model, prompt, choice, broken)
            stop = "tool_use"
        else:
            text = text_answer(model, prompt, acct.answer_words)
            text, out, cut = acct.out_tokens(
                malformed(text) if broken else text, int(body["max_tokens"])
            )
            content, stop = [{"type": "text", "text": text}], "max_tokens" if cut else "end_turn"
        fresh = total - read - written
        acct.bill.charge(model, fresh=fresh, cached=read, written=written, output=out, batch=batch)
        acct.stats["anthropic.messages"] += 1
        return Answered(200, message(model, content, stop, fresh, read, written, out))

    def _tool_use(
        self, body: dict[str, Any], model: str, prompt: str, choice: dict[str, Any], broken: bool
    ) -> tuple[list[dict[str, Any]], int]:
        """A forced tool call: its input follows the tool's schema (empty when scripted bad)."""
        tool = next(t for t in body.get("tools", []) if t.get("name") == choice.get("name"))
        answer: dict[str, Any] = json.loads(json_answer(model, prompt, tool["input_schema"]))
        if broken:
            answer = {}
        _, out, _ = self.account.out_tokens(json.dumps(answer), None)
        use_id = f"toolu_{uuid.uuid4().hex[:12]}"
        return [{"type": "tool_use", "id": use_id, "name": tool["name"], "input": answer}], out

    async def messages(self, request: Request) -> Response:
        return await self.account.live(request, self.message)

    # -- batches ---------------------------------------------------------------------------

    async def create_batch(self, request: Request) -> Response:
        body = await request.json()
        items = [(str(r["custom_id"]), dict(r["params"])) for r in body.get("requests", [])]
        if not items:
            return JSONResponse(error(400, "requests is empty"), status_code=400)
        job = self.account.new_batch(self.name, "msgbatch", self.message, items)
        self.account.stats["anthropic.batches"] += 1
        return JSONResponse(self._batch(job, str(request.base_url)))

    def _batch(self, job: BatchJob, base_url: str) -> dict[str, Any]:
        ended = self.account.due(job)
        kinds = Counter(kind for _, kind, _ in job.results or [])
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.created))
        results_url = f"{base_url.rstrip('/')}/v1/messages/batches/{job.id}/results"
        return {
            "id": job.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": {
                "processing": 0 if ended else len(job.items),
                "succeeded": kinds["ok"],
                "errored": kinds["errored"],
                "canceled": 0,
                "expired": kinds["expired"],
            },
            "created_at": iso,
            "expires_at": iso,
            "ended_at": iso if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": results_url if ended else None,
        }

    def _job(self, request: Request) -> BatchJob | None:
        job = self.account.batches.get(request.path_params["batch_id"])
        return job if job is not None and job.api == self.name else None

    async def get_batch(self, request: Request) -> Response:
        job = self._job(request)
        if job is None:
            return JSONResponse(error(404, "no such batch", "not_found_error"), status_code=404)
        return JSONResponse(self._batch(job, str(request.base_url)))

    async def batch_results(self, request: Request) -> Response:
        job = self._job(request)
        if job is None or job.results is None:
            return JSONResponse(error(404, "no results yet", "not_found_error"), status_code=404)
        lines = [json.dumps(message_batch_line(*item)) for item in job.results]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="application/binary")

    def routes(self) -> list[Route]:
        return [
            Route("/v1/messages", self.messages, methods=["POST"]),
            Route("/v1/messages/batches", self.create_batch, methods=["POST"]),
            Route("/v1/messages/batches/{batch_id}", self.get_batch, methods=["GET"]),
            Route("/v1/messages/batches/{batch_id}/results", self.batch_results, methods=["GET"]),
        ]
