"""Every paid call is on the bill: recorded when it starts and as it returns, under an id
that shows a call made twice, reconciled with the steps' ledger (a call that never came back
stays on it as unconfirmed); finalize claims before its side effects."""

import math

import pytest
import redis
from celery.exceptions import Ignore

from producers.bill import summarize_bill
from producers.report import unique_steps
from queues import keys
from queues.messages import Outcome, StepStatus
from workers.errors import TransientError
from workers.finalize import handle, ledger_entry, result_of
from workers.infer import handle_batch
from workers.ports import Completion
from workers.stores.redis_stores import RedisFinalizeGuard
from workers.testing import FunctionProvider, envelope, infer_hops, make_runtime

FINE = FunctionProvider(lambda r: Completion("fine", 100, 10, confidence=0.9, simulated=True))


def answers(calls: list[dict]) -> list[dict]:
    return [c for c in calls if c["event"] == "answer"]


def killed(request):
    raise SystemExit("the worker dies while the provider answers")


def test_each_call_is_recorded_with_the_id_its_step_carries():
    rt, bus, stores = make_runtime(FINE)
    handle_batch(infer_hops(*(envelope(step_id=s, tier="cheap") for s in ("a", "b"))), rt)
    assert [(c["step_id"], c["event"]) for c in stores.calls] == [
        ("a", "start"),
        ("b", "start"),
        ("a", "answer"),
        ("b", "answer"),
    ]
    for (env, _), call in zip(bus.finalized, answers(stores.calls), strict=True):
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
    assert bill["duplicate_usd"] == pytest.approx(answers(stores.calls)[1]["cost_usd"])
    assert bill["calls_outside_steps"] == 0 and bill["unconfirmed_calls"] == 0


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
    [call] = answers(stores.calls)
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
    assert step.cost_usd == pytest.approx(sum(c["cost_usd"] for c in answers(stores.calls)))
    assert step.attempts == 2
    # A finalize delivered twice (the same run) is not paid twice.
    [once] = unique_steps([entries[0], entries[0]])
    assert once.cost_usd == entries[0].cost_usd


def test_a_call_whose_worker_dies_mid_call_stays_on_the_bill_as_unconfirmed():
    rt, _bus, stores = make_runtime(FunctionProvider(killed))
    with pytest.raises(SystemExit):
        handle_batch(infer_hops(*(envelope(step_id=s, tier="cheap") for s in ("a", "b"))), rt)
    bill = summarize_bill(stores.calls, [])
    assert bill["provider_calls"] == 0 and bill["unconfirmed_calls"] == 2
    # No confirmed call of the model to go by: each is put at its worst case.
    assert bill["unconfirmed_usd"] == bill["unconfirmed_worst_usd"] == bill["billed_usd"] > 0
    assert bill["confirmed_usd"] == 0.0


def test_an_unconfirmed_call_is_priced_at_what_its_models_calls_cost():
    answer = [FINE.answer]
    rt, _bus, stores = make_runtime(FunctionProvider(lambda r: answer[0](r)))
    handle_batch(infer_hops(envelope(step_id="a", tier="cheap")), rt)
    paid = answers(stores.calls)[0]["cost_usd"]
    answer[0] = killed
    with pytest.raises(SystemExit):
        handle_batch(infer_hops(envelope(step_id="b", tier="cheap")), rt)
    bill = summarize_bill(stores.calls, [])
    assert bill["unconfirmed_calls"] == 1
    assert bill["unconfirmed_usd"] == pytest.approx(paid)  # the same prompt, the same share
    assert bill["unconfirmed_usd"] < bill["unconfirmed_worst_usd"]
    assert bill["billed_usd"] == pytest.approx(2 * paid)


def timed_out_twice(request):
    """What an HTTP adapter notes of a call whose two tries both timed out."""
    for n in (1, 2):
        request.on_try("try_sent", n)
        request.on_try("try_failed", n, billed=None, error="APITimeoutError")
    return TransientError("timed out")


def test_a_failed_call_is_off_the_bill_but_for_its_timed_out_tries():
    answers = iter([lambda r: TransientError("503"), timed_out_twice])
    rt, bus, stores = make_runtime(FunctionProvider(lambda r: next(answers)(r)))
    handle_batch(infer_hops(*(envelope(step_id=s, tier="cheap") for s in ("a", "b"))), rt)
    bill = summarize_bill(stores.calls, [])
    assert bill["provider_calls"] == 0 and bill["unconfirmed_calls"] == 2
    events = [c["event"] for c in stores.calls if c["event"] not in ("try_sent", "try_failed")]
    assert events == ["start", "start", "unanswered", "unanswered"]
    assert len(bus.sent) == 2  # both retry through the queue


def test_a_call_cut_off_while_waiting_to_retry_a_refused_try_is_not_billed():
    start = {"call_id": "c", "try": "t", "event": "start", "model": "m", "worst_usd": 0.01}
    refused = {**start, "event": "try_failed", "n": 1, "billed": False}
    assert summarize_bill([start, refused], [])["unconfirmed_calls"] == 0
    # Cut off with its second try out: that one may be billed.
    again = {**start, "event": "try_sent", "n": 2}
    assert summarize_bill([start, refused, again], [])["unconfirmed_calls"] == 1
    # Cut off after a try that timed out and one refused: the timed-out one may be billed.
    timed_out = {**start, "event": "try_failed", "n": 2, "billed": None}
    assert summarize_bill([start, refused, again, timed_out], [])["unconfirmed_calls"] == 1


def test_a_call_cut_off_before_its_provider_sent_it_is_not_billed():
    # The HTTP adapters note each try as it goes out: a call still queued behind the
    # provider's concurrency cap when its worker died never reached the provider.
    start = {"call_id": "c", "try": "t", "event": "start", "model": "m", "worst_usd": 0.01}
    queued = {**start, "tries_noted": True}
    assert summarize_bill([queued], [])["unconfirmed_calls"] == 0
    sent = {**start, "event": "try_sent", "n": 1}
    assert summarize_bill([queued, sent], [])["unconfirmed_calls"] == 1
    # A provider that notes no tries: a started call counts as sent.
    assert summarize_bill([start], [])["unconfirmed_calls"] == 1


def test_a_failed_calls_note_waits_out_a_redis_blink():
    rt, _, stores = make_runtime(FunctionProvider(lambda r: TransientError("503")))
    blinks = iter([redis.ConnectionError("restarting"), redis.BusyLoadingError("loading")])
    append = rt.calls.append

    def blinking(entry):
        if (error := next(blinks, None)) is not None:
            raise error
        append(entry)

    rt.calls.append = blinking  # type: ignore[method-assign]
    handle_batch(infer_hops(envelope(step_id="blink", tier="cheap")), rt)
    assert [c["event"] for c in stores.calls] == ["start", "unanswered"]
    assert summarize_bill(stores.calls, [])["unconfirmed_calls"] == 0


def test_an_answer_after_timed_out_tries_carries_them_on_the_bill():
    def late(request):
        request.on_try("try_sent", 1)
        request.on_try("try_failed", 1, billed=None, error="APITimeoutError")
        request.on_try("try_sent", 2)
        return Completion("late", 100, 10, confidence=0.9)

    rt, _bus, stores = make_runtime(FunctionProvider(late))
    handle_batch(infer_hops(envelope(step_id="late", tier="cheap")), rt)
    bill = summarize_bill(stores.calls, [])
    assert bill["provider_calls"] == 1 and bill["unconfirmed_calls"] == 1
    assert bill["billed_usd"] == pytest.approx(2 * bill["confirmed_usd"])


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
