"""What the stages record in the metrics, on doubles: each event where it happens, once."""

from prometheus_client import CollectorRegistry

from queues.messages import Outcome, StepStatus
from workers import finalize
from workers.errors import TransientError
from workers.infer import handle_batch
from workers.ports import Completion
from workers.testing import FunctionProvider, MemoryBudgets, envelope, infer_hops, make_runtime


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return sum(
        s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def answering(text: str, confidence: float = 0.9):
    return FunctionProvider(lambda r: Completion(text, 100, 10, confidence=confidence))


def test_an_answered_call_is_billed_by_model_tenant_and_owner():
    rt, _, _ = make_runtime(answering("fine"))
    handle_batch(infer_hops(*[envelope(step_id=f"s{i}", tier="cheap") for i in range(3)]), rt)
    reg = rt.metrics.registry
    model = rt.table.model_of("cheap")
    cost = 3 * model.cost(100, 10)
    assert value(reg, "tierfleet_cost_usd_total", model=model.name, shadow="false") == cost
    assert value(reg, "tierfleet_owner_cost_usd_total", agent="support") == cost
    assert value(reg, "tierfleet_tokens_total", kind="input") == 300
    assert value(reg, "tierfleet_budget_reservations_total", result="reserved") == 3
    assert value(reg, "tierfleet_call_seconds_count") == 3
    assert value(reg, "tierfleet_stage_seconds_count", stage="infer") == 0  # the task times it


def test_an_escalation_is_counted_with_its_reason_class():
    rt, _, _ = make_runtime(answering("meh", confidence=0.2))
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    reg = rt.metrics.registry
    assert value(reg, "tierfleet_escalations_total", from_tier="cheap", reason="confidence") == 1


def test_a_refused_budget_and_a_provider_error_are_counted():
    rt, _, _ = make_runtime(answering("fine"), budgets=MemoryBudgets(limit_nano=1))
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    assert value(rt.metrics.registry, "tierfleet_budget_reservations_total", result="refused") == 1

    def down(_request):
        raise TransientError("provider status 503")

    rt, _, _ = make_runtime(FunctionProvider(down))
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    assert value(rt.metrics.registry, "tierfleet_provider_errors_total", kind="TransientError") == 1


def test_finalize_counts_a_step_once_with_its_latency_and_frontier_price():
    rt, _, stores = make_runtime()
    env = envelope(tier="cheap")
    outcome = Outcome(status=StepStatus.ok, answer="fine", tier="cheap", model="sim/gpt-4o-mini")
    for _ in range(2):  # a redelivered finalize does its side effects once
        finalize.handle(env, outcome, rt)
    reg = rt.metrics.registry
    assert value(reg, "tierfleet_steps_total", status="ok", tier="cheap") == 1
    assert value(reg, "tierfleet_step_seconds_count", lane="standard") == 1
    assert value(reg, "tierfleet_cache_lookups_total", layer="miss") == 1
    [entry] = stores.ledger
    assert entry["frontier_usd"] > 0 and entry["frontier_model"] == rt.table.top.model
    assert value(reg, "tierfleet_frontier_cost_usd_total") == entry["frontier_usd"]
