"""Admission to a model call: the prompt must fit the model (``policies.context_fit``), and
the call's worst case is reserved in every budget scope before it is made. A refused step
ends budget_exceeded, or, when it asked for it, with a best-effort close."""

from __future__ import annotations

from policies.context_fit import Refit, fit_context
from policies.hit_audit import audit_messages
from policies.judge import JUDGE_MAX_TOKENS, judge_messages
from policies.money import NANO, to_nano_up
from policies.self_report import ask_for_confidence
from policies.tiers import TierTable, reservation_usd
from policies.tokens import reservation_tokens
from queues import keys
from queues.messages import Envelope
from queues.step import ChatMessage, Lane
from queues.topology import Stage
from workers.call_notes import Admitted
from workers.errors import PermanentError
from workers.history_choice import with_history
from workers.outcomes import carry_out
from workers.ports import supports_batch
from workers.runtime import Runtime
from workers.stage import budget_stop


def call_messages(env: Envelope, table: TierTable) -> tuple[ChatMessage, ...]:
    """What the call sends: the step's request (asking for a confidence line where the tier
    takes the model's own word), a judge's view of the request and its answer, or a cache
    audit's view of the request beside a stored one and its answer."""
    if env.audit_of is not None and env.shadow_of is not None:
        audit = env.audit_of
        return audit_messages(audit.question, audit.cached_question, env.shadow_of.answer)
    if env.judging and env.first_answer is not None:
        return judge_messages(env.request, env.first_answer.answer)
    if env.tier is not None and table.tier(env.tier).confidence == "self_report":
        return ask_for_confidence(env.request)
    return env.request


def fit_into(env: Envelope, model: str, needed: int, rt: Runtime) -> None:
    """A prompt its model cannot hold: a tier whose model holds it, else compressed harder
    (once), else dead-lettered; never sent to fail."""
    assert env.tier is not None
    limits = {name: m.context_tokens for name, m in rt.table.models.items()}
    if model in rt.table.models and rt.table.models[model].local is not None:
        limits[model] = getattr(rt.provider_for(rt.table.models[model]), "context_tokens", None)
    refitted = env.fit_tokens is not None
    decision = fit_context(rt.table, env.tier, model, needed, env.output_tokens, limits, refitted)
    if isinstance(decision, Refit):
        rt.bus.send(
            Stage.compress,
            env.decide("infer", "refit", decision.why, fit_tokens=decision.fit_tokens, retries=0),
        )
        return
    carry_out(decision, env, rt)


CLOSE_NOTE = (
    "The budget for this task is spent: this is your last reply. In at most {words} words, "
    "give the best final answer you can from what is known so far, and say what is left "
    "undone."
)


def closing(env: Envelope, reason: str, rt: Runtime) -> Envelope:
    """The step's best-effort close: one short call on the cheapest tier, the request with
    a closing note, admitted within the close allowance (``close_allowance``)."""
    s = rt.settings
    cheapest = rt.table.names[0]
    note = ChatMessage(role="user", content=CLOSE_NOTE.format(words=s.close_max_tokens * 3 // 4))
    why = f"{reason}; a best-effort close on {cheapest} within ${s.close_allowance_usd:g}"
    return env.decide(
        "budget",
        "close",
        why,
        tier=cheapest,
        model=None,
        prompt=(*env.request, note),
        max_output_tokens=s.close_max_tokens,
        closing=True,
        first_answer=None,
        judging=False,  # a judge's call refused: the step closes on its own request
        retries=0,
    )


def close_allowance(env: Envelope, tokens: int, rt: Runtime) -> tuple[int, int]:
    """What a closing call may spend beyond the limits: the allowance in nano-dollars, and
    the close's own ``tokens``; nothing for any other call."""
    if not env.closing:
        return (0, 0)
    return (to_nano_up(rt.settings.close_allowance_usd), tokens)


def admit(env: Envelope, rt: Runtime) -> Admitted | None:
    """Reserve the call's worst case; a refusal ends the step as budget_exceeded. A batch-lane
    step for a provider with a batch API reserves at the batch price."""
    if env.tier is None:
        raise PermanentError("envelope reached inference without a tier")
    model = rt.table.pick(env.tier, env.model)
    env = with_history(env, model, rt)
    tokens_in = reservation_tokens(
        rt.counter,
        call_messages(env, rt.table),
        () if env.judge_kind else env.step.tools,
        factor=model.counting.factor,
        image_tokens=model.counting.image_tokens,
    )
    # The call's max_tokens is exactly the output the reservation covers (Admitted carries
    # it to the request): the provider cannot be asked for more than was reserved.
    output_tokens = JUDGE_MAX_TOKENS if env.judge_kind else env.output_tokens
    limit = model.context_tokens or getattr(rt.provider_for(model), "context_tokens", None)
    if limit and tokens_in + output_tokens > limit:
        fit_into(env, model.name, tokens_in + output_tokens, rt)
        return None
    if env.shadow_of is not None:  # the operator's check, not the session's spend
        worst = reservation_usd(model, tokens_in, output_tokens, batch=False)
        return Admitted(env, model, reservation="", worst_usd=worst)
    batch = (
        env.step.lane is Lane.batch
        and not env.judge_kind
        and supports_batch(rt.provider_for(model))
    )
    tokens = tokens_in + output_tokens
    worst = reservation_usd(model, tokens_in, output_tokens, batch=batch)
    amount = to_nano_up(worst)
    step = env.step
    rid = keys.reservation(
        step.tenant, step.step_id, env.attempt, env.retries, env.first_answer is not None
    )
    allowance = close_allowance(env, tokens, rt)
    refused = rt.budgets.reserve(env, rid, amount, tokens, allowance)
    rt.metrics.budget.labels("reserved" if refused is None else "refused").inc()
    if refused is not None:
        state = next(s for s in rt.budgets.states(env) if s.scope == refused)
        reason = (
            f"hard {refused} budget refuses ${amount / NANO:.6f} ({tokens} tokens) on "
            f"{model.name}: {state.describe()}"
        )
        if step.on_budget == "close" and not env.closing:
            rt.bus.send(Stage.infer, closing(env, reason, rt))
            return None
        budget_stop(rt, env, "infer", reason)
        return None
    return Admitted(env, model, rid, batch, output_tokens, worst)
