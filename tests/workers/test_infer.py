import redis

from queues.messages import StepStatus
from queues.topology import Stage
from workers.errors import PermanentError, TransientError
from workers.infer import handle_batch
from workers.ports import Completion
from workers.testing import FunctionProvider, MemoryBudgets, envelope, infer_hops, make_runtime

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def answering(text: str, confidence: float | None = 0.9, correct: bool | None = True):
    return FunctionProvider(
        lambda r: Completion(text, 100, 10, confidence=confidence, correct=correct, simulated=True)
    )


def test_micro_batch_is_one_provider_call_and_accepted_answers_finalize():
    provider = answering("fine")
    rt, bus, _ = make_runtime(provider)
    envs = [envelope(step_id=f"s{i}", tier="cheap") for i in range(5)]
    handle_batch(infer_hops(*envs), rt)
    assert len(provider.calls) == 1 and len(provider.calls[0]) == 5
    assert [o.status for _, o in bus.finalized] == [StepStatus.ok] * 5
    env, outcome = bus.finalized[0]
    assert outcome.model == "sim/gpt-4o-mini" and outcome.correct is True
    [cost] = env.costs
    assert cost.accepted and cost.cost_usd == rt.table.model_of("cheap").cost(100, 10)


def test_rejected_answer_is_reenqueued_to_the_next_tier_with_its_cost_kept():
    rt, bus, _ = make_runtime(answering("meh", confidence=0.2))
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    [(stage, env, _)] = bus.sent
    assert (stage, env.tier, env.attempt) == (Stage.infer, "mid", 1)
    assert env.decisions[-1].what == "escalate->mid"
    assert "confidence 0.20 < 0.70" in env.decisions[-1].why
    assert [c.accepted for c in env.costs] == [False]


def test_top_tier_rejection_dead_letters():
    rt, bus, _ = make_runtime(answering("not json"))
    handle_batch(infer_hops(envelope(tier="frontier", attempt=2, response_schema=SCHEMA)), rt)
    [(_env, outcome)] = bus.finalized
    assert outcome.status is StepStatus.dead_lettered
    assert "top tier frontier rejected: answer is not JSON" in outcome.reason


def test_hard_budget_refuses_before_the_call():
    provider = answering("fine")
    rt, bus, _ = make_runtime(provider, budgets=MemoryBudgets(limit_nano=1))
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    assert provider.calls == []
    [(_env, outcome)] = bus.finalized
    assert outcome.status is StepStatus.budget_exceeded and "budget refuses" in outcome.reason


def test_budget_is_settled_at_the_actual_cost():
    budgets = MemoryBudgets(limit_nano=10**9)
    rt, _, _ = make_runtime(answering("fine"), budgets=budgets)
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    assert budgets.held == {}
    assert budgets.spent == round(rt.table.model_of("cheap").cost(100, 10) * 1e9)


def failing(exc: Exception) -> FunctionProvider:
    def answer(r):
        raise exc

    return FunctionProvider(answer)


def test_transient_provider_error_retries_each_step_with_backoff():
    budgets = MemoryBudgets()
    rt, bus, _ = make_runtime(failing(TransientError("429")), budgets=budgets)
    handle_batch(infer_hops(envelope(tier="mid")), rt)
    [(stage, env, countdown)] = bus.sent
    assert (stage, env.tier, env.retries) == (Stage.infer, "mid", 1)
    assert countdown is not None and countdown > 0
    assert budgets.held == {} and budgets.spent == 0


def test_exhausted_retries_and_permanent_errors_dead_letter():
    rt, bus, _ = make_runtime(failing(TransientError("503")))
    handle_batch(infer_hops(envelope(tier="mid", retries=4)), rt)
    assert "retries exhausted (4): 503" in bus.finalized[0][1].reason
    rt, bus, _ = make_runtime(failing(PermanentError("400 bad request")))
    handle_batch(infer_hops(envelope(tier="mid")), rt)
    assert bus.finalized[0][1].reason == "400 bad request"


def test_a_provider_bug_dead_letters_the_batch_instead_of_losing_it():
    rt, bus, _ = make_runtime(failing(ZeroDivisionError("boom")))
    handle_batch(infer_hops(*(envelope(step_id=f"s{i}", tier="cheap") for i in range(3))), rt)
    assert len(bus.finalized) == 3
    assert all("internal error: ZeroDivisionError" in o.reason for _, o in bus.finalized)


def test_malformed_items_do_not_sink_the_rest_of_the_batch():
    rt, bus, stores = make_runtime(answering("fine"))
    forged = envelope(tier="cheap").to_wire()  # an envelope with no seal
    handle_batch([["garbage", None], [None], [forged], *infer_hops(envelope(tier="cheap"))], rt)
    assert len(stores.dead) == 3
    assert "forged or unsealed" in stores.dead[2]["reason"]
    assert [o.status for _, o in bus.finalized] == [StepStatus.ok]


class BlinkingBudgets(MemoryBudgets):
    def reserve(self, env, reservation, amount_nano, tokens=0, allowance=(0, 0)):
        raise redis.exceptions.ConnectionError("connection reset")


def test_a_redis_blink_while_reserving_retries_the_step_instead_of_losing_it():
    rt, bus, _ = make_runtime(answering("fine"), budgets=BlinkingBudgets())
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    [(stage, env, countdown)] = bus.sent
    assert (stage, env.retries) == (Stage.infer, 1) and countdown
    assert "connection reset" in env.decisions[-1].why
