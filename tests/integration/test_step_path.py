"""A step's whole path through the real fleet: Redis broker, Celery worker processes."""

import uuid

import pytest
from celery.result import AsyncResult

from policies.tables import DEFAULT_TIER_TABLE
from policies.tiers import load_tier_table
from queues.messages import StepStatus
from queues.step import AgentStep
from workers.ml.tokenizer import BpeCounter
from workers.ports import Completion, CompletionRequest
from workers.providers.simulated import SimulatedProvider

pytestmark = pytest.mark.integration
TABLE = load_tier_table(DEFAULT_TIER_TABLE)


def make_step(tenant: str = "acme", **fields) -> AgentStep:
    base = {
        "tenant": tenant,
        "agent": "support",
        "workflow": "rebooking",
        "session_id": f"s-{uuid.uuid4().hex[:8]}",
        "messages": [
            {"role": "system", "content": "You are an airline agent."},
            {"role": "user", "content": f"Question {uuid.uuid4().hex}"},
        ],
        "labels": {"difficulty": 0.1},
    }
    return AgentStep.model_validate({**base, **fields})


def test_step_travels_every_stage_and_its_async_result_resolves(fleet):
    step = make_step()
    handle = fleet.submit(step)
    assert isinstance(handle, AsyncResult) and handle.id == f"acme/{step.step_id}"
    [result] = fleet.wait([handle], timeout=60)
    assert result.status is StepStatus.ok and result.tier == "cheap"
    assert [d.stage for d in result.decisions] == ["cache", "compress", "classify", "infer"]
    assert result.cost_usd > 0 and result.tokens_in > 0 and result.simulated
    # The result is a plain Celery result under the step's result id: its tenant and its id.
    assert fleet.app.AsyncResult(f"acme/{step.step_id}").get(timeout=5)["status"] == "ok"
    [entry] = [e for e in fleet.ledger() if e.step_id == step.step_id]
    assert entry.session_id == step.session_id and entry.workflow == "rebooking"
    assert entry.model == "sim/gpt-4o-mini" and entry.cost_usd == result.cost_usd


def test_a_repeated_step_is_an_exact_cache_hit_only_in_its_scope(fleet):
    first = make_step()
    fleet.wait([fleet.submit(first)], timeout=60)
    repeat = make_step(messages=first.messages, session_id="another-session")
    other_tenant = make_step(tenant="globex", messages=first.messages)
    hit, miss = fleet.wait(fleet.submit_many([repeat, other_tenant]), timeout=60)
    assert hit.cache_hit and hit.cost_usd == 0 and hit.answer is not None
    assert [d.what for d in hit.decisions] == ["exact_hit"]
    assert hit.cached_from == first.step_id
    [entry] = [e for e in fleet.ledger() if e.step_id == repeat.step_id]
    assert entry.cache_hit and entry.cached_from == first.step_id and entry.cost_usd == 0
    assert not miss.cache_hit and miss.cost_usd > 0


def _escalating_step() -> AgentStep:
    """A step the simulated cheap model gets wrong with low confidence and mid gets right."""
    provider = SimulatedProvider(BpeCounter())
    for _ in range(200):
        step = make_step(labels={"difficulty": 0.62})
        answers = {}
        for tier in ("cheap", "mid"):
            request = CompletionRequest.for_step(step, TABLE.model_of(tier), step.messages)
            answer = provider.complete([request])[0]
            assert isinstance(answer, Completion)
            answers[tier] = answer
        cheap_bar = TABLE.tier("cheap").accept_min_confidence  # the table's, whatever it is
        mid_bar = TABLE.tier("mid").accept_min_confidence
        if (answers["cheap"].confidence or 0) < cheap_bar and (
            answers["mid"].confidence or 0
        ) >= mid_bar:
            return step
    raise AssertionError("no such step among 200 tries")


def test_a_rejected_cheap_answer_escalates_by_reenqueue_to_the_next_tier(fleet):
    [result] = fleet.wait([fleet.submit(_escalating_step())], timeout=60)
    assert result.status is StepStatus.ok
    assert (result.tier, result.escalations, result.correct) == ("mid", 1, True)
    whats = [d.what for d in result.decisions]
    assert whats[-2:] == ["escalate->mid", "accept"]
    cheap = TABLE.model_of("cheap")
    assert result.cost_usd > cheap.cost(result.tokens_in // 2, 0)  # both attempts are billed
    [entry] = [e for e in fleet.ledger() if e.step_id == result.step_id]
    assert entry.attempts == 2 and entry.escalations == 1


def test_invalid_step_is_refused_at_submit(fleet):
    from producers.fleet import InvalidStep

    with pytest.raises(InvalidStep, match=r"field 'messages\.0\.role'"):
        fleet.submit(
            {
                "tenant": "a",
                "agent": "b",
                "session_id": "c",
                "messages": [{"role": "wizard", "content": "x"}],
            }
        )
