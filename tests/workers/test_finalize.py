import pytest
from celery.exceptions import Ignore

from queues import keys
from queues.messages import CostEntry, Outcome, StepStatus
from queues.topology import TASK_NAMES, Stage
from workers.finalize import finalize_raw, handle
from workers.testing import TEST_SEALER, MemoryBudgets, envelope, make_runtime

OK = Outcome(
    status=StepStatus.ok, answer="20 kg", tier="mid", model="m", provider="simulated", correct=True
)


def charged():
    env = envelope(tier="mid", attempt=1, cache_key="tf:xc:k")
    env = env.charge(
        CostEntry(
            tier="cheap",
            model="a",
            provider="simulated",
            tokens_in=100,
            tokens_out=10,
            cost_usd=0.001,
            simulated=True,
        )
    )
    return env.charge(
        CostEntry(
            tier="mid",
            model="m",
            provider="simulated",
            tokens_in=100,
            tokens_out=20,
            tokens_cached=50,
            cost_usd=0.004,
            accepted=True,
            simulated=True,
        )
    )


def test_result_ledger_and_cache_written_once():
    rt, _, stores = make_runtime()
    env = charged()
    result = handle(env, OK, rt)
    assert result.cost_usd == 0.005 and result.tokens_in == 200 and result.tokens_cached == 50
    assert result.escalations == 1 and result.latency_ms == 1000.0 and result.simulated
    [entry] = stores.ledger
    assert {
        k: entry[k] for k in ("tenant", "agent", "workflow", "session_id", "tier", "model")
    } == {
        "tenant": "acme",
        "agent": "support",
        "workflow": "default",
        "session_id": "s1",
        "tier": "mid",
        "model": "m",
    }
    assert entry["escalations"] == 1 and entry["attempts"] == 2 and entry["cache_hit"] is False
    assert stores.cache["tf:xc:k"]["answer"] == "20 kg"

    again = handle(env, OK, rt)  # a redelivered finalize
    assert again == result and len(stores.ledger) == 1


def test_cache_hits_and_failures_are_not_cached():
    rt, _, stores = make_runtime()
    handle(charged(), OK.model_copy(update={"cache_hit": True}), rt)
    handle(
        envelope(step_id="b", cache_key="tf:xc:k2"), Outcome(status=StepStatus.budget_exceeded), rt
    )
    assert stores.cache == {} and len(stores.ledger) == 2


def test_dead_letters_are_parked_with_the_envelope_and_reason():
    rt, _, stores = make_runtime()
    env = envelope().decide("infer", "dead_letter", "top tier rejected")
    result = handle(env, Outcome(status=StepStatus.dead_lettered, reason="top tier rejected"), rt)
    assert result.status is StepStatus.dead_lettered
    [record] = stores.dead
    assert record["stage"] == "infer" and record["reason"] == "top tier rejected"
    assert record["envelope"] == env.to_wire()


def test_leftover_reservations_are_released():
    budgets = MemoryBudgets(limit_nano=10**6)
    rt, _, _ = make_runtime(budgets=budgets)
    env = envelope()
    budgets.reserve(env, keys.reservation("acme", env.step.step_id, 0, 0), 500)
    handle(env, OK, rt)
    assert budgets.held == {}


def test_malformed_finalize_message_is_dead_lettered_and_stores_no_result():
    rt, _, stores = make_runtime()
    with pytest.raises(Ignore):  # Celery stores nothing under the id it came with
        finalize_raw(("nope", "{}", None), "acme/x", rt)
    assert "malformed finalize message" in stores.dead[0]["reason"]


def _sealed_finalize(env, outcome):
    raw_env, raw_outcome = env.to_wire(), outcome.model_dump_json()
    return raw_env, raw_outcome, TEST_SEALER.sign(TASK_NAMES[Stage.finalize], raw_env, raw_outcome)


def test_a_sealed_finalize_runs_only_under_its_own_steps_result_id():
    rt, _, stores = make_runtime()
    env = envelope(step_id="mine")
    sealed = _sealed_finalize(env, OK)
    with pytest.raises(Ignore):  # replayed under another step's id: refused
        finalize_raw(tuple(sealed), keys.result_id("acme", "theirs"), rt)
    assert stores.ledger == [] and "not as" in stores.dead[0]["reason"]
    result = finalize_raw(tuple(sealed), keys.result_id("acme", "mine"), rt)
    assert result["status"] == "ok" and len(stores.ledger) == 1


def test_an_unsealed_or_tampered_finalize_is_refused():
    rt, _, stores = make_runtime()
    env = envelope(step_id="mine", cache_key="tf:xc:k")
    raw_env, raw_outcome, seal = _sealed_finalize(env, OK)
    forged_env = env.model_copy(update={"cache_key": "tf:xc:budget"}).to_wire()
    for args in [(raw_env, raw_outcome, None), (forged_env, raw_outcome, seal)]:
        with pytest.raises(Ignore):
            finalize_raw(tuple(args), keys.result_id("acme", "mine"), rt)
    assert stores.ledger == [] and stores.cache == {}
    assert all("forged or unsealed" in d["reason"] for d in stores.dead)
