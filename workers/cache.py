"""The cache stage (tf.ingress): an exact hit ends the step at zero model cost."""

from __future__ import annotations

from policies.caching import exact_key
from queues.messages import Envelope, Outcome, StepStatus
from queues.topology import Stage
from workers.runtime import Runtime


def handle(env: Envelope, rt: Runtime) -> None:
    key = exact_key(env.step)
    hit = rt.cache.get(key)
    if hit is None:
        rt.bus.send(Stage.compress, env.decide("cache", "miss", "no exact entry", cache_key=key))
        return
    env = env.decide(
        "cache", "exact_hit", f"same request answered by step {hit['step_id']}", cache_key=key
    )
    rt.bus.finalize(
        env,
        Outcome(
            status=StepStatus.ok,
            answer=hit["answer"],
            tier=hit.get("tier"),
            model=hit.get("model"),
            provider=hit.get("provider"),
            cache_hit=True,
            cached_from=hit["step_id"],
            correct=hit.get("correct"),
        ),
    )
