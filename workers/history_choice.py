"""The history a tier's call carries (policies/history_plan.py): the compress stage's pruned
prompt, or the whole compacted history where the tier's cache prices bill that for less.
Decided per call at admission, when the model is known; the pruned prompt stays on the
envelope, so an escalation to another tier decides afresh."""

from __future__ import annotations

from dataclasses import replace

from policies.compression import compress
from policies.history_plan import PREFIX_CACHING_PROVIDERS, choose_history
from policies.tiers import ModelSpec
from policies.tokens import prompt_tokens
from queues.messages import Envelope
from queues.step import leading_system
from workers.runtime import Runtime

WHOLE = 1_000_000  # a window no session reaches: every message kept (results compacted)


def with_history(env: Envelope, model: ModelSpec, rt: Runtime) -> Envelope:
    pruned = env.pruned if env.pruned is not None else env.prompt
    if (
        pruned is None
        or not rt.settings.history_by_cache_prices
        or model.provider not in PREFIX_CACHING_PROVIDERS
        # Economy, a refit to a context and the special calls keep the tighter prompt.
        or env.economy
        or env.fit_tokens is not None
        or env.judge_kind
        or env.closing
    ):
        restored = {"prompt": pruned, "history": ""}
        return env if env.pruned is None else env.model_copy(update=restored)
    plan = rt.compression_plan()
    whole, _ = compress(
        rt.counter, env.step.messages, replace(plan, keep_last=WHOLE), rt.text_compressor
    )
    static = prompt_tokens(rt.counter, leading_system(pruned))
    choice = choose_history(
        model.provider,
        model.price,
        static,
        prompt_tokens(rt.counter, pruned) - static,
        prompt_tokens(rt.counter, whole) - static,
        env.output_tokens,
        plan.window_stride,
        rt.settings.prompt_cache_breakpoints,
    )
    update = {"prompt": whole if choice.whole else pruned, "pruned": pruned}
    env = env.model_copy(update={**update, "history": choice.name})
    return env.decide("infer", f"history={choice.name}", choice.why) if choice.whole else env
