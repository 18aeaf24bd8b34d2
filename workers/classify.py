"""The classify stage (tf.classify): the router picks the starting tier (and, for the learned
router, the model within it) and says why."""

from __future__ import annotations

from policies.learned_router import route_learned, user_text
from policies.routing import route_by_rules
from policies.tokens import prompt_tokens
from queues.messages import Envelope
from queues.topology import Stage
from workers.runtime import Runtime


def handle(env: Envelope, rt: Runtime) -> None:
    if rt.settings.router == "learned":
        learned = route_learned(
            rt.router, rt.table, user_text(env.step.messages), rt.settings.router_target
        )
        routed = env.decide(
            "classify",
            f"tier={learned.tier} model={learned.model}",
            learned.why,
            tier=learned.tier,
            model=learned.model,
        )
    else:
        route = route_by_rules(
            rt.table,
            task_kind=env.step.task_kind,
            prompt_tokens=prompt_tokens(rt.counter, env.request),
            has_schema=env.step.response_schema is not None,
        )
        routed = env.decide("classify", f"tier={route.tier}", route.why, tier=route.tier)
    rt.bus.send(Stage.infer, routed)
