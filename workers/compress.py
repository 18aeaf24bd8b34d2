"""The compress stage (tf.compress): the budget check (past a soft limit the step runs in
economy mode), max_tokens for the task kind, then the prompt compressed after its static
prefix."""

from __future__ import annotations

from policies.budgets import economy_reason, output_cap
from policies.compression import compress
from queues.messages import Envelope
from queues.topology import Stage
from workers.runtime import Runtime


def handle(env: Envelope, rt: Runtime) -> None:
    s = rt.settings
    reason = economy_reason(rt.budgets.states(env))
    if reason is not None:
        tier_cap = s.economy_max_tier or rt.table.names[0]
        env = env.decide(
            "budget",
            "economy",
            f"{reason}: starting tier <= {tier_cap}, history budget {s.economy_history_tokens} "
            f"tokens, allowances x{s.economy_factor}",
            economy=True,
        )
    cap = output_cap(
        env.step.max_output_tokens,
        env.step.task_kind,
        s.output_tokens_by_kind,
        s.economy_factor if env.economy else None,
    )
    plan = rt.compression_plan(economy=env.economy)
    prompt, report = compress(rt.counter, env.step.messages, plan, rt.text_compressor)
    what = "compressed" if report.changed else "unchanged"
    why = f"{report.describe()}; max_tokens {cap}"
    rt.bus.send(
        Stage.classify,
        env.decide("compress", what, why, prompt=prompt, max_output_tokens=cap),
    )
