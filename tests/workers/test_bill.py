"""Every paid call is on the bill: recorded as it returns, under an id that shows a call
made twice, reconciled with the steps' ledger; finalize claims before its side effects."""

import math

import pytest
from celery.exceptions import Ignore

from producers.report import summarize_bill, unique_steps
from queues import keys
from queues.messages import Outcome, StepStatus
from tests.doubles import FunctionProvider, envelope, infer_hops, make_runtime
from workers.finalize import handle, ledger_entry, result_of
from workers.infer import handle_batch
from workers.ports import Completion
from workers.stores.redis_stores import RedisFinalizeGuard

FINE = FunctionProvider(lambda r: Completion("fine", 100, 10, confidence=0.9, simulated=True))


def test_each_call_is_recorded_with_the_id_its_step_carries():
    rt, bus, stores = make_runtime(FINE)
    handle_batch(infer_hops(*(envelope(step_id=s, tier="cheap") for s in ("a", "b"))), rt)
    assert [c["step_id"] for c in stores.calls] == ["a", "b"]
    for (env, _), call in zip(bus.finalized, stores.calls, strict=True):
        [cost] = env.costs
        assert cost.call_id == call["call_id"] and cost.cost_usd == call["cost_usd"] > 0
    assert len({c["try"] for c in stores.calls}) == 1  # one provider call, two steps


def test_a_call_made_again_after_a_redelivery_shows_as_a_duplicate():
    rt, bus, stores = make_runtime(FINE)
    env = envelope(step_id="twice", tier="cheap")
    handle_batch(infer_hops(env), rt)
    handle_batch(infer_hops(env), rt, deliveries=[2])  # the same message, delivered again
    steps = [ledger_entry(e, result_of(e, o, 0.0), 0.0) for e, o in bus.finalized]
    bill = summarize_bill(stores.calls, unique_steps(steps))
    assert bill["provider_calls"] == 2 and bill["duplicate_calls"] == 1
    assert bill["duplicate_usd"] == pytest.approx(stores.calls[1]["cost_usd"])
    assert bill["calls_outside_steps"] == 0


def test_a_call_whose_step_fails_afterwards_is_still_on_the_bill():
    rt, bus, stores = make_runtime(FINE)

    def broken(env, outcome, countdown=None):
        raise RuntimeError("finalize cannot be sent")

    bus.finalize = broken  # type: ignore[method-assign]
    handle_batch(infer_hops(envelope(step_id="lost-after-call", tier="cheap")), rt)
    bill = summarize_bill(stores.calls, [])
    assert bill["provider_calls"] == 1 and bill["calls_outside_steps"] == 1
    assert bill["billed_usd"] > 0


def test_a_bill_the_price_table_refuses_is_recorded_as_refused():
    nan_bill = FunctionProvider(lambda r: Completion("x", 100, 10, billed_usd=math.nan))
    rt, bus, stores = make_runtime(nan_bill)
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    [call] = stores.calls
    assert call["cost_usd"] == 0.0 and "bill of nan" in call["refused"]
    assert bus.finalized[0][1].status is StepStatus.dead_lettered


def test_a_replayed_step_keeps_the_first_runs_costs():
    rt, bus, stores = make_runtime(FINE)
    first = envelope(step_id="replayed", tier="cheap")
    again = first.model_copy(update={"submitted_at": first.submitted_at + 60})  # a new run
    handle_batch(infer_hops(first), rt)
    handle_batch(infer_hops(again), rt)
    entries = [ledger_entry(e, result_of(e, o, 0.0), 0.0) for e, o in bus.finalized]
    [step] = unique_steps(entries)
    assert step["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in stores.calls))
    assert step["attempts"] == 2
    # A finalize delivered twice (the same run) is not paid twice.
    [once] = unique_steps([entries[0], entries[0]])
    assert once["cost_usd"] == entries[0]["cost_usd"]


def test_finalize_claims_before_its_side_effects():
    rt, _, stores = make_runtime()
    env = envelope(step_id="busy", tier="cheap")
    rt.finalized.claimed.add(keys.step_ref(env.step.tenant, "busy"))  # another delivery has it
    with pytest.raises(Ignore):
        handle(env, Outcome(status=StepStatus.ok, answer="a"), rt)
    assert stores.ledger == []  # nothing done, nothing stored: the other one stores the result


def test_the_claim_on_redis_is_one_holders_until_released_or_marked(redis_client):
    guard = RedisFinalizeGuard(redis_client, ttl_s=60, claim_s=5)
    guard.forget("acme", "c1")
    assert guard.claim("acme", "c1") and not guard.claim("acme", "c1")
    guard.release("acme", "c1")  # its effects failed: a retry takes it on at once
    assert guard.claim("acme", "c1")
    guard.mark("acme", "c1")
    assert guard.done("acme", "c1") and not redis_client.exists(keys.final_claim("acme", "c1"))
    assert 0 < int(redis_client.pttl(keys.final_guard("acme", "c1"))) <= 60_000


def test_a_claim_left_by_a_dead_finalize_expires(redis_client):
    guard = RedisFinalizeGuard(redis_client, ttl_s=60, claim_s=0.2)
    guard.forget("acme", "c2")
    assert guard.claim("acme", "c2")
    assert 0 < int(redis_client.pttl(keys.final_claim("acme", "c2"))) <= 200
