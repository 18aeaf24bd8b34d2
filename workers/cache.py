"""The cache stage (tf.ingress): an exact hit, or a verified semantic hit within the step's
scope, ends the step at zero model cost. The same worker stores answered steps in the
semantic cache and drops a prompt version's entries on request."""

from __future__ import annotations

from typing import Any

import structlog
from celery import Celery

from policies.budgets import economy_reason
from policies.caching import exact_key
from policies.semantic_cache import question_of, scope_of, skip_reason
from queues.messages import Envelope, Outcome, StepStatus
from queues.records import CachedAnswer
from queues.topology import CACHE_INVALIDATE_TASK, CACHE_STORE_TASK, INGRESS, Stage
from workers.errors import MalformedMessage, TransientError, as_fleet_error
from workers.opening import open_sealed, parse_envelope
from workers.runtime import LazyRuntime, Runtime
from workers.stage import budget_stop, dead_letter_raw, no_results, redeliver_later, retry_delay

log = structlog.get_logger("tierfleet.cache")


def _served(hit: CachedAnswer, **extra: Any) -> Outcome:
    return Outcome(
        status=StepStatus.ok,
        answer=hit.answer,
        tier=hit.tier,
        model=hit.model,
        provider=hit.provider,
        cache_hit=True,
        cached_from=hit.step_id,
        correct=hit.correct,
        **extra,
    )


def economy_check(env: Envelope, rt: Runtime) -> Envelope:
    """Past a soft budget the step runs in economy mode. Decided here, before the lookup:
    an economy answer (a lower tier, a shorter allowance) is cached under a key of its own."""
    reason = economy_reason(rt.budgets.states(env))
    if reason is None:
        return env
    if not env.economy:
        rt.metrics.economy.inc()
    s = rt.settings
    tier_cap = s.economy_max_tier or rt.table.names[0]
    return env.decide(
        "budget",
        "economy",
        f"{reason}: starting tier <= {tier_cap}, history budget {s.economy_history_tokens} "
        f"tokens, allowances x{s.economy_factor}",
        economy=True,
    )


def over_step_cap(env: Envelope, rt: Runtime) -> bool:
    """A session past its step cap is an agent in a loop: the step ends budget_exceeded."""
    cap = rt.settings.session_max_steps
    if cap is None:
        return False
    step = env.step
    count = rt.session_steps.count(step.tenant, step.session_id, step.step_id)
    if count <= cap:
        return False
    reason = f"session step cap: this is step {count} of session {step.session_id} (cap {cap})"
    budget_stop(rt, env, "budget", reason)
    return True


def handle(env: Envelope, rt: Runtime) -> None:
    if over_step_cap(env, rt):
        return
    env = economy_check(env, rt)
    key = exact_key(env.step, economy=env.economy)
    stored = rt.cache.get(key)
    if stored is not None:
        hit = CachedAnswer.model_validate(stored)
        env = env.decide(
            "cache", "exact_hit", f"same request answered by step {hit.step_id}", cache_key=key
        )
        rt.bus.finalize(env, _served(hit))
        return
    why_not = skip_reason(env.step, rt.settings.no_semantic_kinds)
    layer = rt.semantic if why_not is None else None
    if why_not is None and layer is not None:
        scope = scope_of(rt.table, env.step, layer.embedder_id)
        served = layer.lookup(question_of(env.step), scope, rt.clock())
        if served is not None:
            s = served.hit
            env = env.decide(
                "cache",
                "semantic_hit",
                f"verifier {s.verifier_score:.3f} >= {s.threshold:.3f} (cosine "
                f"{s.similarity:.3f}) for step {served.answer.step_id}",
                cache_key=key,
            )
            rt.bus.finalize(env, _served(served.answer, semantic=s))
            return
        why_not = "no verified match in scope"
    elif why_not is None:
        why_not = "semantic layer off"
    rt.bus.send(Stage.compress, env.decide("cache", "miss", why_not, cache_key=key))


def remember(env: Envelope, outcome: Outcome, rt: Runtime) -> bool:
    """Store an answered step in the semantic cache, unless it may never be served."""
    if outcome.status is not StepStatus.ok or outcome.cache_hit or outcome.answer is None:
        return False
    if skip_reason(env.step, rt.settings.no_semantic_kinds) is not None:
        return False
    layer = rt.semantic
    if layer is None or outcome.tier is None:
        return False
    scope = scope_of(rt.table, env.step, layer.embedder_id)
    rank = rt.table.tier(outcome.tier).rank
    layer.remember(question_of(env.step), scope, outcome, env.step.step_id, rank, rt.clock())
    return True


def invalidate(prompt_version: str, rt: Runtime) -> dict[str, int]:
    """Drop every exact and semantic entry of a prompt version."""
    exact = rt.cache.drop_prompt_version(prompt_version)
    layer = rt.semantic
    semantic = layer.store.drop_prompt_version(prompt_version) if layer is not None else 0
    log.info("cache_invalidated", prompt_version=prompt_version, exact=exact, semantic=semantic)
    return {"exact": exact, "semantic": semantic}


def store_raw(args: tuple[Any, ...], rt: Runtime) -> None:
    """The semantic store of an answered step, from ``(envelope, outcome, seal)``. A message
    that does not open is dead-lettered. A transient failure stores again after a countdown
    (counted in the envelope); anything else is logged and dropped: the answer already
    reached its producer, so a failed store costs a future hit, never the step."""
    raw_env = args[0] if args else None
    try:
        if len(args) not in (2, 3):  # (envelope, outcome, seal); without a seal it is refused
            raise MalformedMessage(f"cache_store takes 3 arguments, not {len(args)}")
        raw_env, raw_outcome, seal = (*args, None)[:3]
        open_sealed(rt, CACHE_STORE_TASK, seal, raw_env, raw_outcome)
        env = parse_envelope(raw_env)
        outcome = Outcome.model_validate_json(raw_outcome)
    except Exception as exc:
        dead_letter_raw(rt, "cache_store", raw_env, f"malformed cache_store message: {exc}")
        return
    try:
        remember(env, outcome, rt)
    except Exception as exc:
        error = as_fleet_error(exc)
        if isinstance(error, TransientError) and env.retries < rt.settings.max_transient_retries:
            why = f"transient: {error}"
            again = env.decide("cache_store", "retry", why, retries=env.retries + 1)
            rt.bus.remember(again, outcome, countdown=retry_delay(rt, env.retries))
        else:
            log.error("semantic_store_failed", error=str(error), exc_info=exc)


def register(app: Celery, runtime: LazyRuntime) -> None:
    """The store and invalidate tasks, on the cache worker's queue (it owns the store)."""

    @app.task(name=CACHE_STORE_TASK, queue=INGRESS, backend=no_results(app))
    def cache_store(*args: Any, **kwargs: Any) -> None:
        rt = runtime()
        try:
            store_raw(args if not kwargs else (), rt)
        except Exception as exc:
            raise redeliver_later(rt, exc) from exc

    @app.task(name=CACHE_INVALIDATE_TASK, queue=INGRESS, ignore_result=False)
    def cache_invalidate(prompt_version: str) -> dict[str, int]:
        return invalidate(prompt_version, runtime())
