"""What becomes of one model call's result, wherever it came from (a live micro-batch or a
provider batch job): the answer is priced, the budget settled and the cascade's verdict
applied (accept, escalate by re-enqueue, dead-letter); a failure retries or dead-letters.
A rejected answer is still paid: its cost stays on the step's bill."""

from __future__ import annotations

import time
from dataclasses import replace

import structlog

from policies.calibration import calibrate
from policies.cascade import (
    Accept,
    CrossCheck,
    DeadLetter,
    Decision,
    Escalate,
    Judge,
    Verdict,
    accept_threshold,
    decide,
    judge,
    judged,
)
from policies.judge import judge_score
from policies.learned_router import acceptance_text
from policies.money import NANO, to_nano
from policies.self_report import read_confidence
from policies.shadow import agree, shadowed
from policies.text import user_text
from queues.base import usage_of
from queues.messages import CostEntry, Envelope, Outcome, PriorAnswer, StepStatus
from queues.records import AuditRecord, ShadowRecord
from queues.topology import Stage
from workers.call_notes import Admitted, call_id_of, record_call
from workers.ports import Completion
from workers.runtime import Runtime
from workers.stage import budget_stop, dead_letter, fail

log = structlog.get_logger("tierfleet.infer")


def record_shadow(item: Admitted, answer: Completion, cost: float, rt: Runtime) -> None:
    """A shadow answer is compared with the accepted one and recorded; nothing else."""
    env, shadow = item.env, item.env.shadow_of
    assert shadow is not None
    step = env.step
    record = ShadowRecord(
        ts=rt.clock(),
        **step.attribution(),
        accepted_model=shadow.model,
        accepted_tier=shadow.tier,
        shadow_model=item.model.name,
        agree=agree(shadow.answer, answer.text, step.task_kind),
        accepted_confidence=shadow.confidence,
        cost_usd=cost,
        **usage_of(answer),
    )
    rt.shadow.append(record.to_record())


def record_audit(item: Admitted, answer: Completion, cost: float, rt: Runtime) -> None:
    """A cache audit's verdict: the judge's number (0.5 and above: the stored answer serves
    this request) recorded for the cache worker's threshold (workers/hit_bound.py)."""
    env, audit = item.env, item.env.audit_of
    assert audit is not None
    score = judge_score(answer.text) if answer.finish == "stop" else None
    record = AuditRecord(
        ts=rt.clock(),
        tenant=env.step.tenant,
        step_id=env.step.step_id,
        cached_step=audit.cached_step,
        scorer=audit.scorer,
        score=audit.score,
        served=audit.served,
        same=None if score is None else score >= 0.5,
        judge_model=item.model.name,
        cost_usd=cost,
        question=audit.question[:500],
        cached_question=audit.cached_question[:500],
    )
    rt.audits.append(record.to_record())
    rt.metrics.cache_audited(audit.served, record.same)


def maybe_shadow(env: Envelope, accepted: PriorAnswer, rt: Runtime) -> None:
    top = rt.table.top.name
    fraction = rt.settings.shadow_fraction
    if accepted.tier == top or not shadowed(env.step.step_id, fraction):
        return
    copy = env.decide(
        "infer",
        "shadow",
        f"{fraction:.0%} of answers accepted below {top} are compared with {top}'s",
        tier=top,
        model=None,
        shadow_of=accepted.model_copy(update={"correct": None}),
        first_answer=None,
        judging=False,
    )
    rt.bus.send(Stage.infer, copy)


def confidence_of(env: Envelope, model: str, answer: Completion, rt: Runtime) -> float | None:
    """The provider's confidence, else the learned acceptance check's, else none."""
    if answer.confidence is not None or rt.acceptance is None:
        return answer.confidence
    text = acceptance_text(user_text(env.step.messages), answer.text)
    return rt.acceptance.success_of(model, text)


def calibrated(model: str, raw: float | None, rt: Runtime) -> float | None:
    """A raw confidence made P(right) by the model's fitted points, where there are any."""
    points = rt.calibration.get(model)
    return raw if raw is None or not points else calibrate(points, raw)


def weigh(
    env: Envelope, model: str, answer: Completion, needed: float, rt: Runtime
) -> tuple[Completion, float | None, Verdict]:
    """The answer as the step sees it (a self-reported confidence line taken off), its raw
    confidence, and the cascade's verdict on it (calibrated confidence against ``needed``).
    A judge's reply is a score, not an answer of the step: never accepted as one."""
    if env.judging:
        return answer, None, Verdict(False, "a judge's call")
    if rt.table.tier(env.tier or "").confidence == "self_report":
        text, said = read_confidence(answer.text)  # no line: no word on itself, counted 0
        answer = replace(answer, text=text, confidence=said if said is not None else 0.0)
    raw = confidence_of(env, model, answer, rt)
    verdict = judge(
        answer.text,
        task_kind=env.step.task_kind,
        schema=env.step.response_schema,
        confidence=calibrated(model, raw, rt),
        min_confidence=needed,
        finish=answer.finish,
    )
    return answer, raw, verdict


def conclude(
    item: Admitted, answer: Completion, latency_ms: float, rt: Runtime, call_try: str
) -> None:
    env, model, tier = item.env, item.model, item.env.tier or ""
    cost = record_call(item, answer, call_try, latency_ms, rt)
    if env.audit_of is not None:
        record_audit(item, answer, cost, rt)
        return
    if env.shadow_of is not None:
        record_shadow(item, answer, cost, rt)
        return
    settled = rt.budgets.settle(
        env, item.reservation, to_nano(cost), answer.tokens_in + answer.tokens_out
    )
    if settled.overshoot_nano:
        rt.metrics.overshoot.inc(settled.overshoot_nano / NANO)
        log.warning(
            "budget_overshoot",
            model=model.name,
            reserved_usd=settled.reserved_nano / NANO,
            cost_usd=cost,
        )
    needed = accept_threshold(rt.table, tier, rt.settings.quality)
    answer, raw, verdict = weigh(env, model.name, answer, needed, rt)
    env = env.charge(
        CostEntry(
            tier=tier,
            model=model.name,
            provider=model.provider,
            **usage_of(answer),
            cost_usd=cost,
            reserved_usd=settled.reserved_nano / NANO,
            overshoot_usd=settled.overshoot_nano / NANO,
            latency_ms=latency_ms,
            accepted=verdict.accepted,
            simulated=answer.simulated,
            batch=item.batch,
            call_id=call_id_of(env),
            engine_s=answer.engine_s,
            confidence=raw,
            history=env.history,
            queue_wait_s=max(0.0, time.time() - latency_ms / 1000 - env.handed_over_at),
        )
    )
    rt.metrics.queue_wait.labels(tier).observe(env.costs[-1].queue_wait_s)
    this = PriorAnswer(
        answer=answer.text, model=model.name, tier=tier, correct=answer.correct, confidence=raw
    )
    if env.judging and env.first_answer is not None:
        score = judge_score(answer.text) if answer.finish == "stop" else None
        carry_out(judged(rt.table, env.first_answer, model.name, score, needed), env, rt)
        return
    if env.closing:  # the budget is spent: this answer or none, never a dearer one
        close(env, this, verdict.accepted, verdict.why, rt)
        return
    carry_out(decide(rt.table, this, verdict, env.step.task_kind, env.first_answer), env, rt)


def close(env: Envelope, this: PriorAnswer, accepted: bool, why: str, rt: Runtime) -> None:
    """A best-effort close ends the step: with its answer (status ok, the budget's reason
    kept), or, if the answer does not pass, budget_exceeded with no answer."""
    refusal = next(d.why for d in reversed(env.decisions) if d.what == "close")
    if not accepted:
        reason = f"{refusal}; the close was rejected: {why}"
        budget_stop(rt, env, "infer", reason)
        return
    rt.bus.finalize(
        env.decide("infer", "accept", f"best-effort close: {why}"),
        answered(this, rt, reason=f"best-effort close: {refusal}"),
    )


def carry_out(decision: Decision, env: Envelope, rt: Runtime) -> None:
    """The decision's effects: finalize, re-enqueue (same tier or the next) or dead-letter."""
    match decision:
        case Accept(answer=accepted, why=why):
            _accept(env, accepted, why, rt)
        case Judge(model=judge_model, first=first, why=why):
            judging = env.decide(
                "infer",
                f"judge->{judge_model}",
                why,
                model=judge_model,
                first_answer=first,
                judging=True,
                retries=0,
            )
            rt.bus.send(Stage.infer, judging)
        case CrossCheck(model=cross, first=first, why=why):
            checking = env.decide(
                "infer", f"cross-check->{cross}", why, model=cross, first_answer=first, retries=0
            )
            rt.bus.send(Stage.infer, checking)
        case Escalate(tier=upper, why=why):
            rt.metrics.escalated(env.tier or "none", upper, why)
            escalated = env.decide(
                "infer",
                f"escalate->{upper}",
                why,
                tier=upper,
                model=None,  # the next tier's default model
                first_answer=None,
                judging=False,
                attempt=env.attempt + 1,
                retries=0,
            )
            rt.bus.send(Stage.infer, escalated)
        case DeadLetter(why=why):
            dead_letter(rt, env, "infer", why)


def answered(answer: PriorAnswer, rt: Runtime, reason: str = "") -> Outcome:
    """The step's outcome when ``answer`` stands."""
    model = rt.table.models[answer.model]
    return Outcome(
        status=StepStatus.ok,
        answer=answer.answer,
        tier=answer.tier,
        model=model.name,
        provider=model.provider,
        correct=answer.correct,
        reason=reason,
    )


def _accept(env: Envelope, answer: PriorAnswer, why: str, rt: Runtime) -> None:
    rt.bus.finalize(env.decide("infer", "accept", why), answered(answer, rt))
    maybe_shadow(env, answer, rt)


def conclude_or_release(
    item: Admitted, answer: Completion, latency_ms: float, rt: Runtime, call_try: str
) -> None:
    """``conclude``, and if it raises, the reservation is freed before the exception goes on
    to the step's failure path (its retry reserves again)."""
    try:
        conclude(item, answer, latency_ms, rt, call_try)
    except Exception:
        rt.budgets.settle(item.env, item.reservation, 0)
        raise


def release_then(item: Admitted, exc: BaseException, rt: Runtime) -> None:
    """A call that failed: its reservation is released, then the step takes the one failure
    path (``stage.fail``: a countdown back to its tier's queue, or a dead letter). A shadow
    call is dropped: it costs a sample, never the step."""
    if item.env.shadow_of is not None:
        log.warning("shadow_dropped", error=str(exc))
        return
    rt.budgets.settle(item.env, item.reservation, 0)
    fail(rt, item.env, "infer", exc)


def failed(item: Admitted, exc: BaseException, provider: str, rt: Runtime) -> None:
    """One request of a micro-batch failed: it retries or dead-letters on its own."""
    log.warning("provider_failed", provider=provider, error=str(exc))
    rt.metrics.provider_failed(provider, exc)
    release_then(item, exc, rt)
