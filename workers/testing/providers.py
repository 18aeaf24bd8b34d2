"""Providers made of plain functions, as httpx.MockTransport is made of a handler."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from workers.ports import BatchPoll, Completion, CompletionRequest

Answerer = Callable[[CompletionRequest], Completion]


class FunctionProvider:
    """A provider made of a plain function, as httpx.MockTransport is made of a handler."""

    notes_tries = False

    def __init__(self, answer: Answerer, name: str = "simulated") -> None:
        self.answer = answer
        self.name = name
        self.calls: list[list[CompletionRequest]] = []

    def complete(self, requests: Sequence[CompletionRequest]) -> list[Completion | Exception]:
        self.calls.append(list(requests))
        return [self.answer(r) for r in requests]


class BatchFunctionProvider(FunctionProvider):
    """A provider with a batch API made of plain functions: jobs end when ``ended`` is set;
    ``answer`` may return an exception for an item that failed."""

    def __init__(self, answer: Callable[[CompletionRequest], Completion | Exception]) -> None:
        super().__init__(lambda r: Completion("live", 1, 1), name="openai")
        self.batch_answer = answer
        self.jobs: dict[str, list[tuple[str, CompletionRequest]]] = {}
        self.ended = False
        self.job_error: str | None = None

    def submit_batch(self, job_id: str, requests: Sequence[tuple[str, CompletionRequest]]) -> str:
        self.jobs[f"batch_{job_id}"] = list(requests)
        return f"batch_{job_id}"

    def find_batch(self, job_id: str) -> str | None:
        return f"batch_{job_id}" if f"batch_{job_id}" in self.jobs else None

    def poll_batch(self, provider_batch_id: str) -> BatchPoll:
        if not self.ended:
            return BatchPoll(ended=False)
        if self.job_error:
            return BatchPoll(ended=True, error=self.job_error)
        return BatchPoll(
            ended=True,
            results={cid: self.batch_answer(r) for cid, r in self.jobs[provider_batch_id]},
        )
