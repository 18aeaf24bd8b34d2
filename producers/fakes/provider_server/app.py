"""The test server's routes: OpenAI ``/v1/chat/completions``, ``/v1/files``,
``/v1/batches``; Anthropic ``/v1/messages``, ``/v1/messages/batches``; and its own
``/_bill``, ``/_faults``, ``/_config``, ``/_reset``, ``/_stats``."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from producers.fakes.provider_server.answers import json_answer, malformed, text_answer
from producers.fakes.provider_server.billing import Bill
from producers.fakes.provider_server.faults import Fault, Faults
from producers.fakes.provider_server.prompt_cache import Block, PromptCache
from producers.fakes.provider_server.wire import (
    ANTHROPIC_ERROR_TYPES,
    DEFAULT_ANSWER_WORDS,
    OPENAI_ERROR_TYPES,
    Answered,
    answered_ok,
    chat_completion,
    message,
    message_batch,
    message_batch_line,
    openai_batch_line,
    text_of,
)
from workers.ml.tokenizer import BpeCounter


@dataclass
class ProviderServer:
    batch_delay_s: float = 1.0
    answer_words: int = DEFAULT_ANSWER_WORDS
    bill: Bill = field(default_factory=Bill)
    faults: Faults = field(default_factory=Faults)
    openai_cache: PromptCache = field(default_factory=PromptCache)
    anthropic_cache: PromptCache = field(default_factory=PromptCache)
    stats: Counter[str] = field(default_factory=Counter)
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    counter: BpeCounter = field(default_factory=BpeCounter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- shared ---------------------------------------------------------------------------

    def _blocks(self, texts: list[tuple[str, bool]]) -> list[Block]:
        counts = self.counter.count_many([t for t, _ in texts]) if texts else []
        return [Block(t, n, mark) for (t, mark), n in zip(texts, counts, strict=True)]

    def _out_tokens(self, text: str, cap: int | None) -> tuple[str, int]:
        if cap is not None:
            text = self.counter.head(text, cap)
        return text, self.counter.count_many([text])[0]

    def _error(self, fault: Fault, api: str) -> Answered:
        status = fault.status or 500
        kinds = OPENAI_ERROR_TYPES if api == "openai" else ANTHROPIC_ERROR_TYPES
        kind = kinds.get(status, "server_error" if api == "openai" else "api_error")
        message = f"scripted {status} from the provider test server"
        headers = {}
        if fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        if api == "openai":
            body: dict[str, Any] = {"error": {"message": message, "type": kind, "code": None}}
        else:
            body = {"type": "error", "error": {"type": kind, "message": message}}
        self.stats[f"{api}.error.{status}"] += 1
        return Answered(status, body, headers)

    # -- OpenAI chat ----------------------------------------------------------------------

    def openai_chat(self, body: dict[str, Any], fault: Fault | None, *, batch: bool) -> Answered:
        if fault is not None and fault.status:
            return self._error(fault, "openai")
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        if not messages:
            return Answered(
                400, {"error": {"message": "messages is required", "type": "invalid_request_error"}}
            )
        texts = [(json.dumps(t, separators=(",", ":")), False) for t in body.get("tools") or []]
        texts += [(json.dumps(m, separators=(",", ":")), False) for m in messages]
        blocks = self._blocks(texts)
        prompt_tokens = sum(b.tokens for b in blocks)
        cached = self.openai_cache.openai(model, blocks)
        prompt = text_of(messages[-1].get("content"))
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            text = json_answer(model, prompt, fmt["json_schema"].get("schema", {}))
        else:
            text = text_answer(model, prompt, self.answer_words)
        if fault is not None and fault.malformed:
            text = malformed(text)
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        text, out = self._out_tokens(text, int(cap) if cap else None)
        logprobs: dict[str, Any] | None = None
        if body.get("logprobs"):
            # Deterministic per answer: a malformed answer comes back unsure of itself.
            lp = -1.2 if fault is not None and fault.malformed else -0.05
            words = text.split() or [text]
            logprobs = {
                "content": [
                    {"token": w, "logprob": lp, "bytes": None, "top_logprobs": []} for w in words
                ]
            }
        self.bill.charge(
            model, fresh=prompt_tokens - cached, cached=cached, written=0, output=out, batch=batch
        )
        self.stats["openai.chat"] += 1
        return Answered(200, chat_completion(model, text, prompt_tokens, cached, out, logprobs))

    # -- Anthropic messages ---------------------------------------------------------------

    def anthropic_message(
        self, body: dict[str, Any], fault: Fault | None, *, batch: bool
    ) -> Answered:
        if fault is not None and fault.status:
            return self._error(fault, "anthropic")
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        if not messages or "max_tokens" not in body:
            return Answered(
                400,
                {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "messages and max_tokens are required",
                    },
                },
            )

        def block(obj: dict[str, Any], prefix: str = "") -> tuple[str, bool]:
            plain = {k: v for k, v in obj.items() if k != "cache_control"}
            return prefix + json.dumps(plain, separators=(",", ":")), "cache_control" in obj

        texts = [block(t) for t in body.get("tools") or []]
        system = body.get("system")
        if isinstance(system, str):
            texts.append((system, False))
        elif isinstance(system, list):
            texts += [block(part, "system:") for part in system]
        for msg in messages:
            given = msg.get("content")
            parts = [{"type": "text", "text": given}] if isinstance(given, str) else given
            texts += [block(part, f"{msg.get('role')}:") for part in parts or []]
        blocks = self._blocks(texts)
        total = sum(b.tokens for b in blocks)
        read, written = self.anthropic_cache.anthropic(model, blocks)
        prompt = text_of(messages[-1].get("content"))
        choice = body.get("tool_choice") or {}
        content: list[dict[str, Any]]
        if choice.get("type") == "tool":
            tool = next(t for t in body.get("tools", []) if t.get("name") == choice.get("name"))
            answer: dict[str, Any] = json.loads(json_answer(model, prompt, tool["input_schema"]))
            if fault is not None and fault.malformed:
                answer = {}
            text, out = self._out_tokens(json.dumps(answer), None)
            content = [
                {
                    "type": "tool_use",
                    "id": f"toolu_{uuid.uuid4().hex[:12]}",
                    "name": tool["name"],
                    "input": answer,
                }
            ]
            stop = "tool_use"
        else:
            text = text_answer(model, prompt, self.answer_words)
            if fault is not None and fault.malformed:
                text = malformed(text)
            text, out = self._out_tokens(text, int(body["max_tokens"]))
            content = [{"type": "text", "text": text}]
            stop = "end_turn"
        fresh = total - read - written
        self.bill.charge(model, fresh=fresh, cached=read, written=written, output=out, batch=batch)
        self.stats["anthropic.messages"] += 1
        return Answered(200, message(model, content, stop, fresh, read, written, out))

    # -- HTTP ------------------------------------------------------------------------------

    async def _live(self, request: Request, api: str, answer: Callable[..., Answered]) -> Response:
        # OpenAI takes a bearer token; Anthropic x-api-key or (newer SDKs) a bearer token.
        if not (request.headers.get("authorization") or request.headers.get("x-api-key")):
            return JSONResponse({"error": {"message": "no API key given"}}, status_code=401)
        body = await request.json()
        # Calls in flight at once, and the most seen: what a fleet-wide limit must bound.
        self.stats["in_flight"] += 1
        self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
        try:
            fault = self.faults.take(str(body.get("model", "")), json.dumps(body.get("messages")))
            if fault is not None and fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            result = answer(body, fault, batch=False)
        finally:
            self.stats["in_flight"] -= 1
        return JSONResponse(result.body, status_code=result.status, headers=result.headers)

    async def chat_completions(self, request: Request) -> Response:
        return await self._live(request, "openai", self.openai_chat)

    async def messages(self, request: Request) -> Response:
        return await self._live(request, "anthropic", self.anthropic_message)

    # -- batches ---------------------------------------------------------------------------

    def _run_items(
        self, items: list[tuple[str, dict[str, Any]]], api: str
    ) -> list[tuple[str, str, Answered | None]]:
        """Each item: (custom_id, outcome kind, answer). Kinds: ok, errored, expired."""
        answer = self.openai_chat if api == "openai" else self.anthropic_message
        out: list[tuple[str, str, Answered | None]] = []
        for custom_id, body in items:
            fault = self.faults.take(str(body.get("model", "")), json.dumps(body.get("messages")))
            if fault is not None and fault.expire:
                out.append((custom_id, "expired", None))
                continue
            result = answer(body, fault, batch=True)
            out.append((custom_id, "ok" if result.status == 200 else "errored", result))
        return out

    def _new_batch(self, api: str, items: list[tuple[str, dict[str, Any]]], **extra: Any) -> str:
        """Record a batch job; it runs once ``batch_delay_s`` has passed (see ``_due``)."""
        prefix = "batch" if api == "openai" else "msgbatch"
        batch_id = f"{prefix}_{uuid.uuid4().hex[:16]}"
        self.batches[batch_id] = {
            "api": api,
            "created": time.time(),
            "items": items,
            "results": None,
            **extra,
        }
        self.stats[f"{api}.batches"] += 1
        return batch_id

    def _due(self, batch: dict[str, Any]) -> bool:
        """Runs a batch once its time has come; True when it has ended."""
        with self._lock:
            if batch["results"] is None and time.time() - batch["created"] >= self.batch_delay_s:
                batch["results"] = self._run_items(batch["items"], batch["api"])
                batch["ended"] = time.time()
            return batch["results"] is not None

    async def create_file(self, request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return JSONResponse({"error": {"message": "file is required"}}, status_code=400)
        data = await upload.read()
        file_id = f"file-{uuid.uuid4().hex[:16]}"
        self.files[file_id] = data
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
        data = self.files.get(request.path_params["file_id"])
        if data is None:
            return JSONResponse({"error": {"message": "no such file"}}, status_code=404)
        return Response(data, media_type="application/octet-stream")

    async def create_batch(self, request: Request) -> Response:
        body = await request.json()
        data = self.files.get(str(body.get("input_file_id")))
        if data is None:
            return JSONResponse({"error": {"message": "no such input file"}}, status_code=400)
        items = []
        for line in data.decode().splitlines():
            if line.strip():
                row = json.loads(line)
                items.append((str(row["custom_id"]), dict(row["body"])))
        batch_id = self._new_batch(
            "openai",
            items,
            input_file_id=body["input_file_id"],
            metadata=body.get("metadata") or {},
        )
        return JSONResponse(self._openai_batch(batch_id))

    def _openai_batch(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        ended = self._due(batch)
        obj: dict[str, Any] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": None,
            "input_file_id": batch["input_file_id"],
            "completion_window": "24h",
            "status": "completed" if ended else "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(batch["created"]),
            "metadata": batch["metadata"],
            "request_counts": {"total": len(batch["items"]), "completed": 0, "failed": 0},
        }
        if ended:
            if "output_file_id" not in batch:
                lines = [openai_batch_line(*item) for item in batch["results"]]
                ok = [line for line in lines if line["error"] is None and answered_ok(line)]
                bad = [line for line in lines if line not in ok]
                batch["output_file_id"] = self._store_lines(ok)
                batch["error_file_id"] = self._store_lines(bad)
                batch["counts"] = (len(ok), len(bad))
            obj["output_file_id"] = batch["output_file_id"]
            obj["error_file_id"] = batch["error_file_id"]
            obj["completed_at"] = int(batch["ended"])
            done, failed = batch["counts"]
            obj["request_counts"] = {
                "total": len(batch["items"]),
                "completed": done,
                "failed": failed,
            }
        return obj

    def _store_lines(self, lines: list[dict[str, Any]]) -> str | None:
        if not lines:
            return None
        file_id = f"file-{uuid.uuid4().hex[:16]}"
        self.files[file_id] = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return file_id

    async def list_batches(self, request: Request) -> Response:
        """OpenAI's batch list, newest first (one page: the server keeps few)."""
        ids = [b for b, v in self.batches.items() if v["api"] == "openai"]
        data = [self._openai_batch(b) for b in reversed(ids)]
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
        batch_id = request.path_params["batch_id"]
        if batch_id not in self.batches:
            return JSONResponse({"error": {"message": "no such batch"}}, status_code=404)
        return JSONResponse(self._openai_batch(batch_id))

    async def create_message_batch(self, request: Request) -> Response:
        body = await request.json()
        items = [(str(r["custom_id"]), dict(r["params"])) for r in body.get("requests", [])]
        if not items:
            return JSONResponse(
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "requests is empty"},
                },
                status_code=400,
            )
        batch_id = self._new_batch("anthropic", items)
        return JSONResponse(self._anthropic_batch(batch_id, str(request.base_url)))

    def _anthropic_batch(self, batch_id: str, base_url: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        ended = self._due(batch)
        return message_batch(batch_id, batch, ended, base_url)

    async def get_message_batch(self, request: Request) -> Response:
        batch_id = request.path_params["batch_id"]
        if batch_id not in self.batches:
            return JSONResponse(
                {"type": "error", "error": {"type": "not_found_error", "message": "no such batch"}},
                status_code=404,
            )
        return JSONResponse(self._anthropic_batch(batch_id, str(request.base_url)))

    async def message_batch_results(self, request: Request) -> Response:
        batch = self.batches.get(request.path_params["batch_id"])
        if batch is None or batch["results"] is None:
            return JSONResponse(
                {
                    "type": "error",
                    "error": {"type": "not_found_error", "message": "no results yet"},
                },
                status_code=404,
            )
        lines = [json.dumps(message_batch_line(*item)) for item in batch["results"]]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="application/binary")

    # -- control ---------------------------------------------------------------------------

    async def get_bill(self, request: Request) -> Response:
        return JSONResponse(self.bill.snapshot())

    async def get_stats(self, request: Request) -> Response:
        return JSONResponse(dict(self.stats))

    async def set_faults(self, request: Request) -> Response:
        self.faults.set(await request.json())
        return JSONResponse({"ok": True})

    async def set_config(self, request: Request) -> Response:
        body = await request.json()
        if "batch_delay_s" in body:
            self.batch_delay_s = float(body["batch_delay_s"])
        if "answer_words" in body:
            self.answer_words = int(body["answer_words"])
        return JSONResponse(
            {"batch_delay_s": self.batch_delay_s, "answer_words": self.answer_words}
        )

    def new_account(self) -> None:
        """Forget bill, caches, faults, files and batches: a fresh provider account."""
        self.bill.reset()
        self.faults.set([])
        self.openai_cache = PromptCache()
        self.anthropic_cache = PromptCache()
        in_flight = self.stats["in_flight"]  # calls still running are not forgotten
        self.stats.clear()
        self.stats["in_flight"] = in_flight
        self.files.clear()
        self.batches.clear()

    async def reset(self, request: Request) -> Response:
        self.new_account()
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/files", self.create_file, methods=["POST"]),
                Route("/v1/files/{file_id}/content", self.file_content, methods=["GET"]),
                Route("/v1/batches", self.create_batch, methods=["POST"]),
                Route("/v1/batches", self.list_batches, methods=["GET"]),
                Route("/v1/batches/{batch_id}", self.get_batch, methods=["GET"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/messages/batches", self.create_message_batch, methods=["POST"]),
                Route("/v1/messages/batches/{batch_id}", self.get_message_batch, methods=["GET"]),
                Route(
                    "/v1/messages/batches/{batch_id}/results",
                    self.message_batch_results,
                    methods=["GET"],
                ),
                Route("/_bill", self.get_bill, methods=["GET"]),
                Route("/_stats", self.get_stats, methods=["GET"]),
                Route("/_faults", self.set_faults, methods=["POST"]),
                Route("/_config", self.set_config, methods=["POST"]),
                Route("/_reset", self.reset, methods=["POST"]),
            ]
        )
