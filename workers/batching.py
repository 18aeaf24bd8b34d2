"""celery-batches' micro-batching task, with two gaps closed: a batch whose worker process
dies (a prefork child killed inside the flush) goes back to its queue, and a message that
comes back is flushed on its own.

Celery rejects a plain task's message with requeue when its process is lost
(``task_reject_on_worker_lost``); celery-batches hands the batch to the pool with no error
callback, so its messages stay unacknowledged in a worker that is alive and renewing its
leases (workers/lease.py): stranded for good. Here the pool's error callback rejects each
request with requeue, so each comes back marked redelivered. A redelivered message is then
flushed as a batch of one (its own pool job): if it is the step that kills its worker, it
takes no batch-mates with it again, and past ``max_deliveries`` it is dead-lettered
(workers/infer.py). Fresh messages are still flushed together. A step the task left
stranded (even its failure path failed: the broker or Redis down) is rejected back to its
queue while its batch-mates are acknowledged.

celery-batches also sends no task events for the requests it buffers, so Flower and any
event consumer never saw a step at inference. Each request here announces itself as the
default strategy would (``task-received`` with the description the bus gave it, never the
envelope), then ``task-started``, ``task-succeeded`` or ``task-failed`` (a step sent back
to its queue is ``task-rejected``, by celery itself)."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

import structlog
from celery.worker.request import Request
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task

log = structlog.get_logger("tierfleet.batching")


def redelivered(request: Request) -> bool:
    return bool((request.delivery_info or {}).get("redelivered"))


def received(request: Request) -> None:
    """The ``task-received`` event celery's own strategy sends for a plain task."""
    request.send_event(
        "task-received",
        name=request.name,
        args=request.argsrepr,
        kwargs=request.kwargsrepr,
        root_id=request.root_id,
        parent_id=request.parent_id,
        retries=request.request_dict.get("retries", 0),
        eta=None,
        expires=None,
    )


class RequeueingBatches(Batches):  # type: ignore[misc]  # celery-batches is untyped here
    def flush(self, requests: Collection[Request]) -> Any:
        fresh = [r for r in requests if not redelivered(r)]
        if fresh:
            self._flush_together(fresh)
        for request in requests:
            if redelivered(request):
                self._flush_together([request])

    def _flush_together(self, requests: list[Request]) -> Any:
        serializable = ([SimpleRequest.from_request(r) for r in requests],)
        late = [r for r in requests if r.task.acks_late]
        early = [r for r in requests if not r.task.acks_late]
        for request in requests:
            received(request)
        started = [time.monotonic()]

        def on_accepted(pid: int, time_accepted: float) -> None:
            started[0] = time.monotonic()
            for request in requests:
                request.send_event("task-started")
            for request in early:
                request.acknowledge()

        def on_return(result: Any) -> None:
            # The task returns the ids of requests it left stranded (even their failure
            # path failed): those go back to the queue, never acknowledged unanswered.
            stranded = set(result) if isinstance(result, list) else set()
            runtime = time.monotonic() - started[0]
            for request in requests:
                if request.id not in stranded:
                    request.send_event("task-succeeded", result="None", runtime=runtime)
            for request in late:
                if request.id in stranded:
                    log.error("micro_batch_step_requeued", request=request.id)
                    request.reject(requeue=True)
                else:
                    request.acknowledge()

        def on_error(exc: Any) -> None:
            log.error("micro_batch_lost", size=len(late), error=repr(exc))
            for request in requests:
                request.send_event("task-failed", exception=repr(exc), traceback="")
            for request in late:
                request.reject(requeue=True)

        return self._pool.apply_async(
            apply_batches_task,
            (self, serializable, 0, None),
            accept_callback=on_accepted,
            callback=on_return,
            error_callback=on_error,
        )
