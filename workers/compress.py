"""The compress stage (tf.compress): max_tokens for the task kind (smaller in economy mode,
which the cache stage decided), then the prompt compressed after its static prefix. With
``summarize_dropped`` on, each tool exchange the history budget drops is sent once to the
cheap tier as a summarize step of its own (charged to the same session); the summaries it
writes replace the dropped exchanges in the session's later calls."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from policies.budgets import output_cap
from policies.compression import CompressionPlan, CompressionReport, compress
from policies.history import Unit, summary_request, unit_key
from policies.tokens import reservation_tokens
from queues.messages import Envelope
from queues.step import AgentStep, ChatMessage, Lane
from queues.topology import Stage
from workers.runtime import Runtime


def handle(env: Envelope, rt: Runtime) -> None:
    s = rt.settings
    cap = output_cap(
        env.step.max_output_tokens,
        env.step.task_kind,
        s.output_tokens_by_kind,
        s.economy_factor if env.economy else None,
    )
    plan = rt.compression_plan(economy=env.economy)
    step = env.step
    known = rt.summaries.get(step.tenant, step.session_id) if plan.summarize_dropped else None
    prompt, report = compress(rt.counter, step.messages, plan, rt.text_compressor, known)
    fit = ""
    if env.fit_tokens is not None:  # no model the step may reach holds it as it is
        prompt, report, fit = fitted(env, plan, cap, known, rt)
    what = "compressed" if report.changed else "unchanged"
    why = f"{report.describe()}; max_tokens {cap}{fit}"
    asked = ask_for_summaries(env, report.to_summarize, rt)
    if asked:
        why += f"; asked the cheap tier to summarize {asked} dropped exchanges"
    rt.bus.send(
        Stage.classify,
        # A new prompt: whatever history an earlier tier chose is forgotten.
        env.decide(
            "compress", what, why, prompt=prompt, max_output_tokens=cap, pruned=None, history=""
        ),
    )


def fitted(
    env: Envelope,
    plan: CompressionPlan,
    cap: int,
    known: Mapping[str, str] | None,
    rt: Runtime,
) -> tuple[tuple[ChatMessage, ...], CompressionReport, str]:
    """The prompt compressed harder, the history budget halved (and the rest of the plan
    tightened as in economy mode) until it and its answer fit ``env.fit_tokens``."""
    assert env.fit_tokens is not None
    step = env.step
    budget = plan.history_budget_tokens or rt.settings.economy_history_tokens
    for _ in range(8):
        prompt, report = compress(rt.counter, step.messages, plan, rt.text_compressor, known)
        needed = reservation_tokens(rt.counter, prompt, step.tools) + cap
        if needed <= env.fit_tokens:
            break
        budget = max(1, budget // 2)
        plan = plan.economy(budget)
    return prompt, report, f"; compressed to fit {env.fit_tokens} tokens: {needed}"


def ask_for_summaries(env: Envelope, dropped: Sequence[Unit], rt: Runtime) -> int:
    """Submit a summarize step for each dropped exchange nobody has asked about yet."""
    step = env.step
    asked = 0
    for unit in dropped:
        key = unit_key(unit)
        if not rt.summaries.claim(step.tenant, step.session_id, key):
            continue
        summary = AgentStep(
            step_id=f"{step.step_id[:100]}.summary.{key[:12]}",
            tenant=step.tenant,
            agent=step.agent,
            workflow=step.workflow,
            session_id=step.session_id,
            messages=summary_request(unit),
            task_kind="summarize",
            max_output_tokens=rt.settings.summary_max_tokens,
            # Never ahead of the agent's own steps; batch would make it hours late.
            lane=Lane.standard,
        )
        rt.bus.send(Stage.cache, Envelope(step=summary, summary_of=key))
        asked += 1
    return asked
