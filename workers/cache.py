"""The cache stage (tf.ingress): an exact hit, or a semantic hit within the step's scope
scoring above the threshold the deployment's audits keep, ends the step at zero model cost.
The same worker stores answered steps in the semantic cache and drops a prompt version's
entries on request."""

from __future__ import annotations

from typing import Any

import structlog
from celery import Celery

from policies.budgets import economy_reason
from policies.caching import exact_key
from policies.hit_audit import to_judge
from policies.semantic_cache import question_of, scope_of, skip_reason
from queues.messages import CacheAudit, Envelope, Outcome, PriorAnswer, SemanticHit, StepStatus
from queues.records import CachedAnswer
from queues.topology import CACHE_INVALIDATE_TASK, CACHE_STORE_TASK, INGRESS, Stage
from workers.errors import MalformedMessage, TransientError, as_fleet_error
from workers.opening import open_sealed, parse_envelope
from workers.runtime import LazyRuntime, Runtime
from workers.semantic import Candidate, SemanticLayer
from workers.stage import budget_stop, dead_letter_raw, no_results, redeliver_later, retry_delay

log = structlog.get_logger("tierfleet.cache")

MISS_BELOW = "no match in scope above the served threshold"


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
        if semantic_hit(env, key, layer, rt):
            return
        why_not = MISS_BELOW
    elif why_not is None:
        why_not = "semantic layer off"
    rt.bus.send(Stage.compress, env.decide("cache", "miss", why_not, cache_key=key))


def semantic_hit(env: Envelope, key: str, layer: SemanticLayer, rt: Runtime) -> bool:
    """Serve the best candidate in scope if it clears the audited threshold; put a sampled
    share of would-be hits (served or a little under) to the judge either way."""
    question = question_of(env.step)
    found = layer.lookup(question, scope_of(rt.table, env.step, layer.embedder_id), rt.clock())
    if found is None:
        return False
    bound = rt.hit_bound.current(layer.scorer, layer.verifier.threshold)
    served = found.score >= bound.threshold
    if to_judge(found.score, bound, layer.verifier.threshold, env.step.step_id, rt.settings):
        send_audit(env, found, layer.scorer, served, rt)
    if not served:
        return False
    hit = SemanticHit(
        similarity=found.similarity,
        verifier_score=round(found.score, 6),
        threshold=bound.threshold,
        question=question,
        cached_question=found.answer.question,
        embedder=layer.embedder_id,
    )
    why = (
        f"{layer.scorer} score {found.score:.3f} >= {bound.threshold:.3f} ({bound.source}: "
        f"{bound.why}) for step {found.answer.step_id}"
    )
    env = env.decide("cache", "semantic_hit", why, cache_key=key)
    rt.bus.finalize(env, _served(found.answer, semantic=hit))
    return True


def send_audit(env: Envelope, found: Candidate, scorer: str, served: bool, rt: Runtime) -> None:
    """A copy of the step to the judge's tier, asking whether the stored answer answers it:
    an operator's check like a shadow call (no budget of the step's; on the bill as an
    audit), its verdict recorded by the infer stage (workers/outcomes.record_audit)."""
    judge = rt.settings.semantic_judge_tier or rt.table.top.name
    stored = found.answer
    audit = CacheAudit(
        question=question_of(env.step),
        cached_question=stored.question,
        cached_step=stored.step_id,
        score=found.score,
        scorer=scorer,
        served=served,
    )
    copy = env.decide(
        "cache",
        "audit",
        f"would-be hits are judged by {judge} ({rt.settings.semantic_audit_share:.0%} once "
        f"{rt.settings.semantic_audit_warmup} are, all before)",
        tier=judge,
        model=None,
        shadow_of=PriorAnswer(
            answer=stored.answer, model=stored.model or "", tier=stored.tier or ""
        ),
        audit_of=audit,
    )
    rt.bus.send(Stage.infer, copy)


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
