import json

import pytest
import redis

from policies.caching import exact_key
from queues.messages import StepStatus, Submission
from queues.topology import TASK_NAMES, Stage
from workers import cache, classify, compress
from workers.errors import PermanentError, TransientError
from workers.opening import open_envelope, open_ingress
from workers.stage import run_stage
from workers.testing import TEST_SEALER, MemoryBudgets, envelope, make_runtime


def test_cache_miss_goes_to_compress_with_its_key():
    rt, bus, _ = make_runtime()
    env = envelope()
    cache.handle(env, rt)
    [(stage, sent, _)] = bus.sent
    assert stage is Stage.compress
    assert sent.cache_key == exact_key(env.step)
    assert sent.decisions[-1].what == "miss"


def test_cache_hit_finishes_at_zero_cost():
    rt, bus, stores = make_runtime()
    env = envelope()
    stores.cache[exact_key(env.step)] = {
        "answer": "20 kg",
        "tier": "cheap",
        "model": "m",
        "provider": "simulated",
        "correct": True,
        "step_id": "old",
    }
    cache.handle(env, rt)
    assert not bus.sent
    [(done, outcome)] = bus.finalized
    assert outcome.cache_hit and outcome.answer == "20 kg" and outcome.cached_from == "old"
    assert done.costs == ()


def test_compress_trims_and_passes_the_prompt_on():
    rt, bus, _ = make_runtime(tool_result_max_tokens=50)
    env = envelope(
        messages=[
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "look it up"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "c", "content": json.dumps(list(range(500)))},
            {"role": "user", "content": "and?"},
        ]
    )
    compress.handle(env, rt)
    [(stage, sent, _)] = bus.sent
    assert stage is Stage.classify
    assert sent.prompt is not None and sent.prompt[0] == env.step.messages[0]
    assert "records omitted" in str(sent.prompt[3].content)
    assert sent.decisions[-1].what == "compressed"
    assert sent.step == env.step  # the submitted step itself never changes


def test_classify_sets_the_tier_and_says_why():
    rt, bus, _ = make_runtime()
    classify.handle(envelope(task_kind="code"), rt)
    [(stage, sent, _)] = bus.sent
    assert (stage, sent.tier) == (Stage.infer, "mid")
    assert "task_kind=code" in sent.decisions[-1].why


def _run(raw, handler, *, sealed=True, stage="cache"):
    """Run ``handler`` as ``stage``'s task on ``raw``: sealed as a stage's hop, or not (as a
    producer's submission, or a forger's message). Also returns the countdowns of the
    retries it sent back to its own stage."""
    rt, bus, stores = make_runtime()
    seal = TEST_SEALER.sign(TASK_NAMES[Stage(stage)], raw) if sealed else None
    opener = open_ingress if stage == "cache" else open_envelope
    run_stage(rt, stage, raw, handler, seal=seal, opener=opener)
    delays = [c for s, e, c in bus.sent if s is Stage(stage) and e.decisions[-1].what == "retry"]
    return bus, stores, delays


def test_malformed_message_is_dead_lettered_and_its_producer_answered():
    _, stores, _ = _run("{not json", cache.handle, sealed=False)
    assert stores.dead[0]["reason"].startswith("malformed submission")
    assert stores.results == []  # no step id to answer to

    bad = {"step": {"step_id": "abc123", "tenant": "acme"}}
    _bus, stores, _ = _run(json.dumps(bad), cache.handle, sealed=False)
    assert "step.agent" in stores.dead[0]["reason"]
    [result] = stores.results
    assert result.step_id == "abc123" and result.status is StepStatus.dead_lettered


def test_a_submission_is_a_step_only_and_the_fleet_makes_the_envelope():
    step = envelope().step
    ok = Submission(step=step, submitted_at=1_999_999_990.0).model_dump_json()
    bus, stores, _ = _run(ok, cache.handle, sealed=False)
    [(_, sent, _)] = bus.sent
    assert sent.step == step and sent.cache_key == exact_key(step) and not stores.dead
    assert sent.submitted_at == 1_999_999_990.0 and sent.tier is None and sent.costs == ()
    # A producer's message that says more than a step (here: a tier, a free shadow mark and
    # a cache key of its choosing) is refused whole, with the field named.
    forged = json.loads(ok) | {"tier": "frontier", "cache_key": "tf:xc:x", "attempt": 5}
    bus, stores, _ = _run(json.dumps(forged), cache.handle, sealed=False)
    assert not bus.sent and "Extra inputs are not permitted" in stores.dead[0]["reason"]


def test_a_submission_claiming_to_be_from_the_future_or_long_ago_is_clamped():
    step = envelope().step
    for claimed, kept in [(9e12, 2_000_000_000.0), (0.0, 2_000_000_000.0 - 24 * 3600)]:
        bus, _, _ = _run(
            Submission(step=step, submitted_at=claimed).model_dump_json(),
            cache.handle,
            sealed=False,
        )
        assert bus.sent[0][1].submitted_at == kept


@pytest.mark.parametrize("stage", ["cache", "compress", "classify"])
def test_an_unsealed_or_tampered_envelope_is_dead_lettered_by_every_stage(stage):
    handlers = {"cache": cache.handle, "compress": compress.handle, "classify": classify.handle}
    env = envelope(cache_key="tf:xc:k")
    bus, stores, _ = _run(env.to_wire(), handlers[stage], sealed=False, stage=stage)
    assert not bus.sent and not bus.finalized
    # Unsealed at ingress, it is read as a producer's submission: a step and nothing more.
    refused = "Extra inputs are not permitted" if stage == "cache" else "forged or unsealed"
    assert refused in stores.dead[0]["reason"]
    raw = env.to_wire()
    rt, bus, stores = make_runtime()
    seal = TEST_SEALER.sign(TASK_NAMES[Stage(stage)], raw)
    tampered = raw.replace('"retries":0', '"retries":3')
    opener = open_ingress if stage == "cache" else open_envelope
    run_stage(rt, stage, tampered, handlers[stage], seal=seal, opener=opener)
    assert not bus.sent and "forged or unsealed" in stores.dead[0]["reason"]
    # A seal made for another stage's task does not open this one.
    other = "classify" if stage != "classify" else "compress"
    wrong = TEST_SEALER.sign(TASK_NAMES[Stage(other)], raw)
    rt, bus, stores = make_runtime()
    run_stage(rt, stage, raw, handlers[stage], seal=wrong, opener=opener)
    assert not bus.sent and "forged or unsealed" in stores.dead[0]["reason"]


def test_transient_error_retries_with_backoff_then_dead_letters():
    def flaky(env, rt):
        raise TransientError("redis timeout")

    bus, _, delays = _run(envelope(retries=1).to_wire(), flaky)
    assert len(delays) == 1 and 0.5 <= delays[0] <= 1.0
    [(_, retried, _)] = bus.sent  # counted in the envelope, the reason on its record
    assert retried.retries == 2 and "redis timeout" in retried.decisions[-1].why
    bus, _, delays = _run(envelope(retries=4).to_wire(), flaky)
    assert not delays
    [(_, outcome)] = bus.finalized
    assert outcome.status is StepStatus.dead_lettered and "retries exhausted" in outcome.reason


def test_permanent_error_and_bugs_dead_letter_with_the_reason():
    def permanent(env, rt):
        raise PermanentError("unknown model")

    def bug(env, rt):
        raise KeyError("oops")

    for handler, reason in ((permanent, "unknown model"), (bug, "internal error: KeyError")):
        bus, _, _ = _run(envelope().to_wire(), handler)
        [(env, outcome)] = bus.finalized
        assert outcome.status is StepStatus.dead_lettered and reason in outcome.reason
        assert env.decisions[-1].what == "dead_letter"


def test_a_redis_blink_is_retried_like_any_transient_error():
    def blink(env, rt):
        raise redis.exceptions.ConnectionError("connection reset")

    _, _, delays = _run(envelope().to_wire(), blink)
    assert len(delays) == 1


def test_max_tokens_is_capped_for_the_task_kind():
    rt, bus, _ = make_runtime(output_tokens_by_kind={"classify": 16})
    compress.handle(envelope(task_kind="classify", max_output_tokens=512), rt)
    [(_, sent, _)] = bus.sent
    assert sent.output_tokens == 16 and not sent.economy
    assert "max_tokens 16" in sent.decisions[-1].why


def test_past_the_soft_limit_a_step_runs_in_economy_mode():
    budgets = MemoryBudgets(soft_nano=1000, spent=1500)
    rt, bus, _ = make_runtime(budgets=budgets, economy_factor=0.5, output_tokens_by_kind={})
    env = envelope(task_kind="reason", max_output_tokens=400)  # rules route reason: frontier
    cache.handle(env, rt)  # decided before the lookup: economy answers have keys of their own
    [(_, looked_up, _)] = bus.sent
    assert looked_up.economy and looked_up.cache_key == exact_key(env.step, economy=True)
    compress.handle(looked_up, rt)
    [_, (stage, sent, _)] = bus.sent
    assert sent.economy and sent.output_tokens == 200
    economy = sent.decisions[-3]
    assert (economy.stage, economy.what) == ("budget", "economy")
    assert "session $0.000002 >= soft $0.000001" in economy.why
    classify.handle(sent, rt)
    [_, _, (stage, routed, _)] = bus.sent
    assert stage is Stage.infer and routed.tier == "cheap"
    assert "economy cap -> cheap" in routed.decisions[-1].why


def test_below_the_soft_limit_nothing_changes():
    rt, bus, _ = make_runtime(budgets=MemoryBudgets(soft_nano=1000, spent=10))
    cache.handle(envelope(task_kind="reason"), rt)
    compress.handle(bus.sent[0][1], rt)
    classify.handle(bus.sent[1][1], rt)
    routed = bus.sent[2][1]
    assert not routed.economy and routed.tier == "frontier"


def test_dropped_exchanges_go_once_to_the_cheap_tier_and_come_back_in_short():
    from queues.messages import Outcome
    from tests.unit.test_compression import long_session
    from workers import finalize

    rt, bus, stores = make_runtime(
        summarize_dropped=True, keep_last_messages=2, window_stride=1, history_budget_tokens=60
    )
    messages = [m.model_dump(exclude_none=True) for m in long_session()]
    env = envelope(messages=messages, session_id="long-1", step_id="call-9")
    compress.handle(env, rt)
    summaries = [e for stage, e, _ in bus.sent if stage is Stage.cache]
    [(_, onward, _)] = [s for s in bus.sent if s[0] is Stage.classify]
    assert len(summaries) == 2 and "asked the cheap tier to summarize 2" in onward.decisions[-1].why
    for s in summaries:
        step = s.step
        assert (step.task_kind, step.tenant, step.agent, step.session_id) == (
            "summarize",
            env.step.tenant,
            env.step.agent,
            "long-1",
        )
        assert step.step_id.startswith("call-9.summary.") and s.summary_of
        assert step.max_output_tokens == rt.settings.summary_max_tokens
        assert "reservation_id: " in step.messages[1].text()
    # The same call again (a redelivery, the session's next call): nothing asked twice.
    bus.sent.clear()
    compress.handle(env, rt)
    assert [stage for stage, _, _ in bus.sent] == [Stage.classify]
    # Finalize stores each summary for the session; the next call carries them.
    for i, s in enumerate(summaries):
        answer = f"reservation {i}: seat noted"
        finalize.handle(s, Outcome(status=StepStatus.ok, answer=answer, tier="cheap"), rt)
    assert len(stores.summaries[(env.step.tenant, "long-1")]) == 2
    bus.sent.clear()
    compress.handle(env, rt)
    [(_, onward, _)] = bus.sent
    assert "2 dropped exchanges told in short" in onward.decisions[-1].why
    assert onward.prompt is not None
    assert any("reservation 1: seat noted" in m.text() for m in onward.prompt)
