"""The batch lane: latency-insensitive steps answered through the providers' batch APIs at
their discount (half price at OpenAI and Anthropic).

1. The inference worker admits a batch-lane step (reserving its worst case at the batch
   price) and parks it in Redis under its model instead of calling the provider.
2. When a model has ``batch_job_max_steps`` parked, or its oldest has waited
   ``batch_job_wait_s``, the parked steps move atomically into a job, submitted as one
   provider batch (an OpenAI JSONL file + batch, or an Anthropic message batch).
3. ``tierfleet.batch_poll``, sent by Celery beat every ``batch_poll_interval_s`` to
   ``tf.batch``, submits due jobs and polls open ones; an ended job's answers fan out one
   step at a time through the same verdict as live answers (accept to finalize, escalate
   to the next tier's batch queue, dead-letter), each priced at the batch discount. Failed
   and expired items retry through the lane or are dead-lettered with the provider's reason.

Every piece of state lives in Redis, so a poller or beat that dies loses nothing: the next
poll picks up the same jobs, and finalize's guard counts a step answered twice only once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial

import structlog
from celery import Celery, Task

from queues.messages import Envelope
from queues.topology import BATCH, BATCH_POLL_TASK
from workers.call_notes import Admitted
from workers.errors import TRANSIENT, PermanentError, TransientError, as_fleet_error
from workers.logs import bound_step
from workers.outcomes import conclude, failed, release_then
from workers.ports import BatchJob, BatchProvider, CompletionRequest, ParkedStep, supports_batch
from workers.runtime import LazyRuntime, Runtime
from workers.stage import isolated

log = structlog.get_logger("tierfleet.batch")


def park(items: Sequence[Admitted], rt: Runtime) -> None:
    """Park admitted batch-lane steps; submit their model's job at once when it is full."""
    now = rt.clock()
    models = set()
    for item in items:
        env = item.env.decide("infer", "batch", f"parked for a {item.model.provider} batch job")
        parked = ParkedStep(env.to_wire(), item.reservation, item.model.name)
        with bound_step(env, "infer"):
            try:
                count = rt.batch_jobs.park(parked, now)
            except Exception as exc:  # e.g. Redis blinked: the step retries through its queue
                isolated(rt, env, "infer", partial(release_then, item, exc, rt))
                continue
            log.info("parked", model=item.model.name, pending=count)
        models.add(item.model.name)
    for model in models:
        if rt.batch_jobs.pending(model) >= rt.settings.batch_job_max_steps:
            try:
                submit_pending(model, rt)
            except Exception:  # the steps are safe in Redis: the poller submits them
                log.exception("batch_submit_deferred", model=model)


def _provider(model_name: str, rt: Runtime) -> BatchProvider:
    provider = rt.provider_for(rt.table.models[model_name])
    if not supports_batch(provider):
        raise PermanentError(f"provider {provider.name} has no batch API")
    return provider  # type: ignore[return-value]  # checked just above


def submit_pending(model: str, rt: Runtime) -> None:
    """Move the model's parked steps into jobs of at most batch_job_max_steps and submit."""
    provider = _provider(model, rt)
    while job := rt.batch_jobs.take(
        model, provider.name, rt.settings.batch_job_max_steps, rt.clock()
    ):
        submit(job, rt)


def _parked(job: BatchJob, rt: Runtime) -> dict[str, tuple[ParkedStep, Envelope]]:
    return {
        custom_id: (parked, Envelope.from_wire(parked.envelope))
        for custom_id, parked in sorted(rt.batch_jobs.items(job.job_id).items())
    }


def submit(job: BatchJob, rt: Runtime, *, again: bool = False) -> None:
    """Submit a job to its provider. ``again``: a job left "submitting" (its submitter died
    or failed): if the provider already has it (found by the job id it carries), it is
    recorded as submitted instead of created a second time."""
    provider = _provider(job.model, rt)
    find = getattr(provider, "find_batch", None)
    if again and callable(find) and (found := find(job.job_id)):
        rt.batch_jobs.submitted(job, found, rt.clock())
        log.info("batch_found", job=job.job_id, batch=found)
        return
    model = rt.table.models[job.model]
    steps = _parked(job, rt)
    requests = [
        (custom_id, CompletionRequest.for_step(env.step, model, env.request, env.output_tokens))
        for custom_id, (_, env) in steps.items()
    ]
    try:
        provider_batch_id = provider.submit_batch(job.job_id, requests)
    except TRANSIENT as exc:
        # The job stays "submitting": a later poll submits it again.
        log.warning("batch_submit_failed", job=job.job_id, error=str(exc), size=len(requests))
        return
    except PermanentError as exc:
        log.error("batch_refused", job=job.job_id, error=str(exc), size=len(requests))
        for custom_id, (parked, env) in steps.items():
            _fail(job, custom_id, parked, env, exc, rt)
        return
    rt.batch_jobs.submitted(job, provider_batch_id, rt.clock())
    log.info("batch_submitted", job=job.job_id, batch=provider_batch_id, size=len(requests))


def _fail(
    job: BatchJob, custom_id: str, parked: ParkedStep, env: Envelope, exc: Exception, rt: Runtime
) -> None:
    item = Admitted(env, rt.table.models[parked.model], parked.reservation, batch=True)
    with bound_step(env, "infer"):
        if isolated(rt, env, "infer", partial(failed, item, exc, job.provider, rt)):
            rt.batch_jobs.done(job.job_id, custom_id)


def collect(job: BatchJob, rt: Runtime) -> None:
    """Poll one submitted job; when it has ended, fan its answers out, one step at a time."""
    assert job.provider_batch_id is not None
    provider = _provider(job.model, rt)
    poll = provider.poll_batch(job.provider_batch_id)
    if not poll.ended:
        return
    model = rt.table.models[job.model]
    latency_ms = max(0.0, rt.clock() - (job.submitted_at or job.created_at)) * 1000
    steps = _parked(job, rt)
    for custom_id, (parked, env) in steps.items():
        answer = poll.results.get(custom_id)
        if answer is None:
            answer = (
                PermanentError(poll.error)
                if poll.error
                else TransientError(f"{provider.name} batch {job.provider_batch_id} has no result")
            )
        if isinstance(answer, Exception):
            _fail(job, custom_id, parked, env, answer, rt)
            continue
        item = Admitted(env, model, parked.reservation, batch=True)
        with bound_step(env, "infer"):
            try:
                # One provider call however often the job's results are read.
                conclude(item, answer, latency_ms, rt, f"{job.provider_batch_id}/{custom_id}")
            except Exception as exc:
                if isinstance(as_fleet_error(exc), TransientError):
                    raise  # Redis or the broker blinked: this and the rest wait for the next poll
                # One item that cannot be concluded (a bad answer, a bug) is failed on its own
                # and the rest of the job goes on: it never stalls its job-mates.
                if not isolated(rt, env, "infer", partial(release_then, item, exc, rt)):
                    continue
            rt.batch_jobs.done(job.job_id, custom_id)
    log.info("batch_collected", job=job.job_id, batch=job.provider_batch_id, size=len(steps))


def poll(rt: Runtime) -> None:
    """One round of the poller: submit due and stranded jobs, collect ended ones."""
    settings = rt.settings
    with rt.batch_jobs.exclusive(settings.batch_poll_lock_s) as mine:
        if not mine:
            log.info("poll_skipped", why="another poller holds the lock")
            return
        now = rt.clock()
        for model in rt.batch_jobs.due(now - settings.batch_job_wait_s):
            submit_pending(model, rt)
        for job in rt.batch_jobs.jobs():
            try:
                if job.state == "submitting":
                    if now - job.created_at >= settings.batch_submit_grace_s:
                        submit(job, rt, again=True)  # its submitter died or failed
                else:
                    collect(job, rt)
            except TRANSIENT as exc:
                log.warning("batch_poll_failed", job=job.job_id, error=str(exc))
            except PermanentError as exc:  # e.g. the provider no longer knows the job
                log.error("batch_abandoned", job=job.job_id, error=str(exc))
                for custom_id, (parked, env) in _parked(job, rt).items():
                    _fail(job, custom_id, parked, env, exc, rt)
            except Exception:  # one broken job must not stop the others being collected
                log.exception("batch_poll_crashed", job=job.job_id)


def register(app: Celery, runtime: LazyRuntime) -> Task:
    @app.task(name=BATCH_POLL_TASK, queue=BATCH, ignore_result=True)
    def batch_poll() -> None:
        started = time.perf_counter()
        poll(runtime())
        log.debug("poll_done", ms=round((time.perf_counter() - started) * 1000, 1))

    return batch_poll
