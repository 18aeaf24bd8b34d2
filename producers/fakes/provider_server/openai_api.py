"""The OpenAI routes of the test server: ``/v1/chat/completions``, ``/v1/files`` and
``/v1/batches``, over the shared account."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from producers.fakes.provider_server.account import Account, BatchJob, scripted_error
from producers.fakes.provider_server.answers import (
    ASKS_FOR_A_NUMBER,
    ASKS_FOR_A_RATING,
    json_answer,
    malformed,
    number_answer,
    rated,
    text_answer,
)
from producers.fakes.provider_server.faults import Fault
from producers.fakes.provider_server.wire import (
    OPENAI_ERROR_TYPES,
    Answered,
    answered_ok,
    chat_completion,
    openai_batch_line,
    text_of,
)


def error(status: int, message: str) -> dict[str, Any]:
    kind = OPENAI_ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "code": None}}


def _logprobs(text: str, unsure: bool) -> dict[str, Any]:
    # Deterministic per answer: a malformed answer comes back unsure of itself.
    lp = -1.2 if unsure else -0.05
    words = text.split() or [text]
    return {
        "content": [{"token": w, "logprob": lp, "bytes": None, "top_logprobs": []} for w in words]
    }


def _closed(node: Any, where: str) -> str | None:
    """What OpenAI says of a strict schema whose objects are not closed and fully required."""
    if not isinstance(node, dict):
        return None
    if node.get("type") == "object":
        if node.get("additionalProperties") is not False:
            return (
                f"In context={where}, 'additionalProperties' is required to be supplied "
                "and to be false."
            )
        missing = set(node.get("properties", {})) - set(node.get("required", []))
        if missing:
            return (
                f"In context={where}, 'required' is required to include every key in "
                f"properties; missing {sorted(missing)}."
            )
        for name, child in node.get("properties", {}).items():
            if problem := _closed(child, f"{where}.{name}"):
                return problem
    return _closed(node.get("items"), f"{where}.items") if "items" in node else None


def strict_problem(fmt: dict[str, Any]) -> str | None:
    """OpenAI refuses a strict json_schema it cannot enforce (400, naming the place)."""
    spec = fmt.get("json_schema") or {}
    if fmt.get("type") != "json_schema" or not spec.get("strict"):
        return None
    problem = _closed(spec.get("schema") or {}, "()")
    return (
        f"Invalid schema for response_format '{spec.get('name')}': {problem}" if problem else None
    )


@dataclass
class OpenAIApi:
    account: Account
    name = "openai"

    def chat(self, body: dict[str, Any], fault: Fault | None, *, batch: bool) -> Answered:
        acct = self.account
        if fault is not None and fault.status:
            acct.stats[f"openai.error.{fault.status}"] += 1
            return scripted_error(fault, error)
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        if not messages:
            return Answered(
                400, {"error": {"message": "messages is required", "type": "invalid_request_error"}}
            )
        texts = [(json.dumps(t, separators=(",", ":")), False) for t in body.get("tools") or []]
        texts += [(json.dumps(m, separators=(",", ":")), False) for m in messages]
        blocks = acct.blocks(texts)
        prompt_tokens = sum(b.tokens for b in blocks)
        cached = acct.cache("openai").openai(model, blocks)
        prompt = text_of(messages[-1].get("content"))
        fmt = body.get("response_format") or {}
        refused = strict_problem(fmt)
        if refused:
            return Answered(400, {"error": {"message": refused, "type": "invalid_request_error"}})
        if fmt.get("json_schema", {}).get("strict"):
            acct.stats["openai.strict"] += 1
        unsure = fault is not None and fault.malformed
        judging = ASKS_FOR_A_NUMBER in json.dumps(messages)
        if fmt.get("type") == "json_schema":
            text = json_answer(model, prompt, fmt["json_schema"].get("schema", {}))
        elif judging:
            text = number_answer(unsure)
        else:
            text = text_answer(model, prompt, acct.answer_words)
        if unsure and not judging:
            text = malformed(text)
        if ASKS_FOR_A_RATING in json.dumps(messages):
            text = rated(text, unsure)
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        text, out, cut = acct.out_tokens(text, int(cap) if cap else None)
        logprobs = _logprobs(text, unsure) if body.get("logprobs") else None
        finish = "length" if cut else "stop"
        acct.bill.charge(
            model, fresh=prompt_tokens - cached, cached=cached, written=0, output=out, batch=batch
        )
        acct.stats["openai.chat"] += 1
        return Answered(
            200, chat_completion(model, text, prompt_tokens, cached, out, logprobs, finish)
        )

    async def chat_completions(self, request: Request) -> Response:
        return await self.account.live(request, self.chat)

    # -- files -----------------------------------------------------------------------------

    async def create_file(self, request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return JSONResponse({"error": {"message": "file is required"}}, status_code=400)
        data = await upload.read()
        file_id = f"file-{uuid.uuid4().hex[:16]}"
        self.account.files[file_id] = data
        return JSONResponse(
            {
                "id": file_id,
                "object": "file",
                "bytes": len(data),
                "created_at": int(time.time()),
                "filename": upload.filename or "input.jsonl",
                "purpose": str(form.get("purpose", "batch")),
                "status": "processed",
            }
        )

    async def file_content(self, request: Request) -> Response:
        data = self.account.files.get(request.path_params["file_id"])
        if data is None:
            return JSONResponse({"error": {"message": "no such file"}}, status_code=404)
        return Response(data, media_type="application/octet-stream")

    # -- batches ---------------------------------------------------------------------------

    async def create_batch(self, request: Request) -> Response:
        body = await request.json()
        data = self.account.files.get(str(body.get("input_file_id")))
        if data is None:
            return JSONResponse({"error": {"message": "no such input file"}}, status_code=400)
        items = []
        for line in data.decode().splitlines():
            if line.strip():
                row = json.loads(line)
                items.append((str(row["custom_id"]), dict(row["body"])))
        job = self.account.new_batch(
            self.name,
            "batch",
            self.chat,
            items,
            input_file_id=body["input_file_id"],
            metadata=body.get("metadata") or {},
        )
        self.account.stats["openai.batches"] += 1
        return JSONResponse(self._batch(job))

    def _batch(self, job: BatchJob) -> dict[str, Any]:
        ended = self.account.due(job)
        obj: dict[str, Any] = {
            "id": job.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": job.input_file_id,
            "completion_window": "24h",
            "status": "completed" if ended else "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(job.created),
            "metadata": job.metadata,
            "request_counts": {"total": len(job.items), "completed": 0, "failed": 0},
        }
        if not ended:
            return obj
        done, failed = self._write_results(job)
        return obj | {
            "output_file_id": job.output_file_id,
            "error_file_id": job.error_file_id,
            "completed_at": int(job.ended or job.created),
            "request_counts": {"total": len(job.items), "completed": done, "failed": failed},
        }

    def _write_results(self, job: BatchJob) -> tuple[int, int]:
        """The output and error files of an ended job, written once."""
        if job.counts is None:
            lines = [openai_batch_line(*item) for item in job.results or []]
            ok = [line for line in lines if line["error"] is None and answered_ok(line)]
            bad = [line for line in lines if line not in ok]
            job.output_file_id = self.account.store_lines(ok)
            job.error_file_id = self.account.store_lines(bad)
            job.counts = (len(ok), len(bad))
        return job.counts

    def _jobs(self) -> list[BatchJob]:
        return [j for j in self.account.batches.values() if j.api == self.name]

    async def list_batches(self, request: Request) -> Response:
        """The batch list, newest first (one page: the server keeps few)."""
        data = [self._batch(job) for job in reversed(self._jobs())]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": False,
            }
        )

    async def get_batch(self, request: Request) -> Response:
        job = self.account.batches.get(request.path_params["batch_id"])
        if job is None or job.api != self.name:
            return JSONResponse({"error": {"message": "no such batch"}}, status_code=404)
        return JSONResponse(self._batch(job))

    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/files", self.create_file, methods=["POST"]),
            Route("/v1/files/{file_id}/content", self.file_content, methods=["GET"]),
            Route("/v1/batches", self.create_batch, methods=["POST"]),
            Route("/v1/batches", self.list_batches, methods=["GET"]),
            Route("/v1/batches/{batch_id}", self.get_batch, methods=["GET"]),
        ]
