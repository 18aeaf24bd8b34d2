"""The classify stage (tf.classify): the rule router picks the starting tier and says why."""

from __future__ import annotations

from policies.routing import route_by_rules
from policies.tokens import prompt_tokens
from queues.messages import Envelope
from queues.topology import Stage
from workers.runtime import Runtime


def handle(env: Envelope, rt: Runtime) -> None:
    route = route_by_rules(
        rt.table,
        task_kind=env.step.task_kind,
        prompt_tokens=prompt_tokens(rt.counter, env.request),
        has_schema=env.step.response_schema is not None,
    )
    rt.bus.send(
        Stage.infer, env.decide("classify", f"tier={route.tier}", route.why, tier=route.tier)
    )
