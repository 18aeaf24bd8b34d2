"""The classify stage (tf.classify): the router picks the starting tier (and, for the learned
router, the model within it) and says why. A step in economy mode starts no higher than the
economy tier cap (a failed answer may still escalate past it: a wrong answer saves nothing)."""

from __future__ import annotations

from policies.learned_router import route_learned
from policies.routing import route_by_rules
from policies.text import user_text
from policies.tokens import prompt_tokens
from queues.messages import Envelope
from queues.topology import Stage
from workers.runtime import Runtime


def handle(env: Envelope, rt: Runtime) -> None:
    model: str | None = None
    if rt.settings.router == "learned":
        learned = route_learned(
            rt.router, rt.table, user_text(env.step.messages), rt.settings.router_target
        )
        tier, model, why = learned.tier, learned.model, learned.why
    else:
        route = route_by_rules(
            rt.table,
            task_kind=env.step.task_kind,
            prompt_tokens=prompt_tokens(rt.counter, env.request),
            has_schema=env.step.response_schema is not None,
        )
        tier, why = route.tier, route.why
    if env.economy:
        capped = rt.table.at_most(tier, rt.settings.economy_max_tier)
        if capped != tier:
            why += f"; economy cap -> {capped}"
            tier, model = capped, None
    what = f"tier={tier}" + (f" model={model}" if model else "")
    rt.bus.send(Stage.infer, env.decide("classify", what, why, tier=tier, model=model))
