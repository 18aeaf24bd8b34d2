"""One provider account, shared by the OpenAI and Anthropic routes: its bill, its prompt
caches, scripted faults, uploaded files, batch jobs, and the counters tests read."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from producers.fakes.provider_server.billing import Bill
from producers.fakes.provider_server.faults import Fault, Faults
from producers.fakes.provider_server.prompt_cache import Block, PromptCache
from producers.fakes.provider_server.wire import DEFAULT_ANSWER_WORDS, Answered
from workers.ml.tokenizer import BpeCounter

Item = tuple[str, dict[str, Any]]  # (custom_id, request body)
ItemResult = tuple[str, str, Answered | None]  # (custom_id, "ok" | "errored" | "expired", answer)


class Answer(Protocol):
    """One API's model call: a request body (and the fault scripted for it) to an answer."""

    def __call__(self, body: dict[str, Any], fault: Fault | None, *, batch: bool) -> Answered: ...


@dataclass
class BatchJob:
    """A batch job: its items run together once the account's batch delay has passed."""

    id: str
    api: str  # the API whose routes list and read it
    answer: Answer
    items: list[Item]
    created: float = field(default_factory=time.time)
    results: list[ItemResult] | None = None
    ended: float | None = None
    input_file_id: str = ""  # OpenAI: the uploaded input, its output and error files
    metadata: dict[str, Any] = field(default_factory=dict)
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: tuple[int, int] | None = None  # (completed, failed), once the files are written


@dataclass
class Account:
    batch_delay_s: float = 1.0
    answer_words: int = DEFAULT_ANSWER_WORDS
    bill: Bill = field(default_factory=Bill)
    faults: Faults = field(default_factory=Faults)
    stats: Counter[str] = field(default_factory=Counter)
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, BatchJob] = field(default_factory=dict)
    counter: BpeCounter = field(default_factory=BpeCounter)
    caches: dict[str, PromptCache] = field(default_factory=dict)  # one per API
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cache(self, api: str) -> PromptCache:
        return self.caches.setdefault(api, PromptCache())

    def blocks(self, texts: list[tuple[str, bool]]) -> list[Block]:
        counts = self.counter.count_many([t for t, _ in texts]) if texts else []
        return [Block(t, n, mark) for (t, mark), n in zip(texts, counts, strict=True)]

    def out_tokens(self, text: str, cap: int | None) -> tuple[str, int, bool]:
        """The answer as sent, its output tokens, and whether max_tokens cut it."""
        full = self.counter.count_many([text])[0]
        if cap is None or full <= cap:
            return text, full, False
        text = self.counter.head(text, cap)
        return text, self.counter.count_many([text])[0], True

    def take_fault(self, body: dict[str, Any]) -> Fault | None:
        return self.faults.take(str(body.get("model", "")), json.dumps(body.get("messages")))

    async def live(self, request: Request, answer: Answer) -> Response:
        """One live call: the key checked, a scripted fault applied, calls in flight counted
        (the most seen at once is what a fleet-wide limit must bound)."""
        # OpenAI takes a bearer token; Anthropic x-api-key or (newer SDKs) a bearer token.
        if not (request.headers.get("authorization") or request.headers.get("x-api-key")):
            return JSONResponse({"error": {"message": "no API key given"}}, status_code=401)
        body = await request.json()
        self.stats["in_flight"] += 1
        self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
        try:
            fault = self.take_fault(body)
            if fault is not None and fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            result = answer(body, fault, batch=False)
        finally:
            self.stats["in_flight"] -= 1
        return JSONResponse(result.body, status_code=result.status, headers=result.headers)

    def new_batch(
        self, api: str, prefix: str, answer: Answer, items: list[Item], **extra: Any
    ) -> BatchJob:
        """Record a batch job; it runs once ``batch_delay_s`` has passed (see ``due``)."""
        job = BatchJob(f"{prefix}_{uuid.uuid4().hex[:16]}", api, answer, items, **extra)
        self.batches[job.id] = job
        return job

    def due(self, job: BatchJob) -> bool:
        """Runs a batch job once its time has come; True when it has ended."""
        with self._lock:
            if job.results is None and time.time() - job.created >= self.batch_delay_s:
                job.results = [self._run_item(job.answer, *item) for item in job.items]
                job.ended = time.time()
            return job.results is not None

    def _run_item(self, answer: Answer, custom_id: str, body: dict[str, Any]) -> ItemResult:
        fault = self.take_fault(body)
        if fault is not None and fault.expire:
            return (custom_id, "expired", None)
        result = answer(body, fault, batch=True)
        return (custom_id, "ok" if result.status == 200 else "errored", result)

    def store_lines(self, lines: list[dict[str, Any]]) -> str | None:
        """A file of JSON lines (a batch's output or errors); None when there are none."""
        if not lines:
            return None
        file_id = f"file-{uuid.uuid4().hex[:16]}"
        self.files[file_id] = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return file_id

    def reset(self) -> None:
        """Forget bill, caches, faults, files and batches: a fresh provider account."""
        self.bill.reset()
        self.faults.set([])
        self.caches.clear()
        in_flight = self.stats["in_flight"]  # calls still running are not forgotten
        self.stats.clear()
        self.stats["in_flight"] = in_flight
        self.files.clear()
        self.batches.clear()


def scripted_error(fault: Fault, body_of: Callable[[int, str], dict[str, Any]]) -> Answered:
    """A scripted error status in the API's error body, with Retry-After when scripted."""
    status = fault.status or 500
    headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
    body = body_of(status, f"scripted {status} from the provider test server")
    return Answered(status, body, headers)
