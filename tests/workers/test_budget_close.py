"""The best-effort close: a step that asks for it ends with a short answer from the cheapest
tier, within the close allowance, when a hard budget refuses its call."""

from queues.messages import StepStatus
from queues.topology import Stage
from workers.infer import handle_batch
from workers.ports import Completion
from workers.testing import FunctionProvider, MemoryBudgets, envelope, infer_hops, make_runtime


def answering(text: str):
    return FunctionProvider(lambda r: Completion(text, 100, 10, confidence=0.9))


def test_a_refused_step_that_asks_to_close_is_answered_by_the_cheapest_tier():
    provider = answering("Rebook on the 14:05; the refund is still pending.")
    budgets = MemoryBudgets(limit_nano=1)
    rt, bus, _ = make_runtime(provider, budgets=budgets)
    handle_batch(infer_hops(envelope(tier="frontier", on_budget="close")), rt)
    assert provider.calls == [] and not bus.finalized  # refused: no call at the frontier
    [(stage, closing, _)] = bus.sent
    assert stage is Stage.infer and closing.tier == "cheap" and closing.closing
    assert closing.max_output_tokens == rt.settings.close_max_tokens
    assert "budget for this task is spent" in closing.request[-1].content
    handle_batch(infer_hops(closing), rt)
    [(env, outcome)] = bus.finalized
    assert outcome.status is StepStatus.ok and outcome.answer.startswith("Rebook")
    assert outcome.reason.startswith("best-effort close: hard session budget refuses")
    [cost] = env.costs
    assert cost.cost_usd > 0 and budgets.spent > 0  # on the bill and on the budget


def test_the_close_is_held_to_its_allowance_and_a_rejected_close_gives_no_answer():
    rt, bus, _ = make_runtime(answering("fine"), budgets=MemoryBudgets(limit_nano=1))
    handle_batch(infer_hops(envelope(tier="cheap", on_budget="close")), rt)
    [(_, closing, _)] = bus.sent
    rt.settings = rt.settings.model_copy(update={"close_allowance_usd": 0.0})
    handle_batch(infer_hops(closing), rt)  # no allowance: refused again, and it ends there
    [(_, outcome)] = bus.finalized
    assert outcome.status is StepStatus.budget_exceeded and len(bus.sent) == 1

    rt, bus, _ = make_runtime(answering(""), budgets=MemoryBudgets(limit_nano=1))
    handle_batch(infer_hops(envelope(tier="cheap", on_budget="close")), rt)
    [(_, closing, _)] = bus.sent
    handle_batch(infer_hops(closing), rt)
    [(_, outcome)] = bus.finalized  # an empty close is no answer, and not escalated
    assert outcome.status is StepStatus.budget_exceeded and "close was rejected" in outcome.reason


def test_a_step_that_did_not_ask_ends_with_no_answer_as_before():
    rt, bus, _ = make_runtime(answering("fine"), budgets=MemoryBudgets(limit_nano=1))
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    [(_, outcome)] = bus.finalized
    assert outcome.status is StepStatus.budget_exceeded and not bus.sent
