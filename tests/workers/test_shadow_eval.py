"""Shadow evaluation: a share of accepted cheaper answers is re-asked of the top tier, and
the agreement recorded, without touching the step, its budget or its result."""

from queues.topology import Stage
from workers.errors import PermanentError
from workers.infer import handle_batch
from workers.ports import Completion
from workers.testing import FunctionProvider, MemoryBudgets, envelope, infer_hops, make_runtime


def by_model(cheap: str, top: str) -> FunctionProvider:
    return FunctionProvider(
        lambda r: Completion(top if r.model.name == "sim/gpt-4o" else cheap, 50, 5, confidence=0.95)
    )


def test_an_accepted_cheap_answer_is_compared_with_the_top_tier():
    budgets = MemoryBudgets()
    rt, bus, stores = make_runtime(by_model("B", "C"), budgets=budgets, shadow_fraction=1.0)
    handle_batch(infer_hops(envelope(tier="cheap", task_kind="multiple_choice")), rt)
    [(_, outcome)] = bus.finalized
    assert outcome.answer == "B"  # the step is answered by the cheap tier, as before
    [(stage, copy, _)] = bus.sent
    assert stage is Stage.infer and copy.tier == "frontier" and copy.shadow_of is not None
    spent = budgets.spent

    handle_batch(infer_hops(copy), rt)
    [record] = stores.shadow
    assert (record["accepted_model"], record["shadow_model"]) == ("sim/gpt-4o-mini", "sim/gpt-4o")
    assert record["agree"] is False and record["cost_usd"] > 0
    assert len(bus.finalized) == 1 and budgets.spent == spent  # the step is untouched


def test_no_shadow_at_the_top_tier_or_at_fraction_zero():
    rt, bus, _ = make_runtime(by_model("B", "B"), shadow_fraction=1.0)
    handle_batch(infer_hops(envelope(tier="frontier")), rt)
    assert bus.sent == []
    rt, bus, _ = make_runtime(by_model("B", "B"))
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    assert bus.sent == []


def test_a_failed_shadow_call_is_dropped_never_dead_lettered():
    rt, bus, _ = make_runtime(by_model("B", "B"), shadow_fraction=1.0)
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    [(_, copy, _)] = bus.sent

    def broken(request):
        raise PermanentError("frontier down")

    failing, bus2, stores2 = make_runtime(FunctionProvider(broken), shadow_fraction=1.0)
    handle_batch(infer_hops(copy), failing)
    assert bus2.finalized == [] and bus2.sent == [] and stores2.dead == []
