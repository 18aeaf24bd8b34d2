"""Hard budgets under concurrency and dead letters, through the real fleet."""

import json
import uuid

import pytest

from policies.money import NANO
from queues import keys
from queues.messages import StepStatus
from queues.topology import INGRESS, TASK_NAMES, Stage
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration


def test_32_concurrent_steps_never_overspend_the_session_hard_limit(fleet):
    session = f"budget-{uuid.uuid4().hex[:8]}"
    limit = 0.004
    fleet.set_session_budget("acme", session, limit)
    steps = [make_step(session_id=session, max_output_tokens=2000) for _ in range(32)]
    results = fleet.wait(fleet.submit_many(steps), timeout=120)

    statuses = [r.status for r in results]
    assert len(results) == 32  # every step answered: nothing lost
    assert StepStatus.ok in statuses and StepStatus.budget_exceeded in statuses
    state = fleet.session_budget("acme", session)
    assert state.spent_nano <= state.limit_nano == round(limit * NANO)
    assert state.reserved_nano == 0  # every reservation settled or released
    paid = sum(r.cost_usd for r in results)
    assert abs(paid * NANO - state.spent_nano) <= len(results)  # rounding only
    stopped = [r for r in results if r.status is StepStatus.budget_exceeded]
    assert all("budget refuses" in r.reason for r in stopped)
    ledger = {e.step_id: e for e in fleet.ledger()}
    assert all(ledger[r.step_id].status == "budget_exceeded" for r in stopped)


def test_malformed_messages_land_in_tf_dead_and_the_worker_stays_up(fleet):
    marker = uuid.uuid4().hex
    fleet.app.send_task(
        TASK_NAMES[Stage.cache], args=[f"not json {marker}"], queue=INGRESS, ignore_result=True
    )
    bad_id = f"bad-{marker}"
    fleet.app.send_task(
        TASK_NAMES[Stage.cache],
        queue=INGRESS,
        ignore_result=True,
        args=[json.dumps({"step": {"step_id": bad_id, "tenant": "acme"}})],
    )

    [answered] = fleet.wait([fleet.app.AsyncResult(keys.result_id("acme", bad_id))], timeout=60)
    assert answered.status is StepStatus.dead_lettered and "step.agent" in answered.reason
    [ok] = fleet.wait([fleet.submit(make_step())], timeout=60)  # the worker is still up
    assert ok.status is StepStatus.ok

    letters = {
        letter.record.raw: letter.record
        for letter in fleet.dead_letters()
        if marker in (letter.record.raw or "")
    }
    assert len(letters) == 2
    assert all(
        r.stage == "cache" and r.reason.startswith("malformed submission") for r in letters.values()
    )


def test_top_tier_rejection_is_dead_lettered_and_replayable(fleet):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    # Every tier gets difficulty 1.0 wrong; a wrong structured answer is malformed half the time.
    for _ in range(40):
        step = make_step(response_schema=schema, labels={"difficulty": 1.0}, task_kind="extract")
        [result] = fleet.wait([fleet.submit(step)], timeout=60)
        if result.status is StepStatus.dead_lettered:
            break
    else:
        raise AssertionError("no step was dead-lettered in 40 tries")
    assert result.reason.startswith("top tier frontier rejected")
    assert result.escalations == 2 and result.cost_usd > 0
    mine = [d for d in fleet.dead_letters() if d.record.step_id == step.step_id]
    assert len(mine) == 1 and mine[0].record.envelope

    replayed, _ = fleet.replay_dead()
    ids = [r.id for r in replayed]
    assert keys.result_id("acme", step.step_id) in ids
    again = dict(zip(ids, fleet.wait(replayed, timeout=60), strict=True))[f"acme/{step.step_id}"]
    assert again.status is StepStatus.dead_lettered and again.reason == result.reason


def long_session(session: str, turns: int) -> list:
    """A growing agent session: every turn a tool call with a bulky JSON result."""
    history: list[dict] = [
        {"role": "system", "content": "You are an airline agent. " * 50},
        {"role": "user", "content": "Find me a flight to Seattle."},
    ]
    steps = []
    for turn in range(turns):
        flights = [{"flight_number": f"HAT{turn}{i:02d}", "price": 100 + i} for i in range(40)]
        history += [
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": f"c{turn}", "function": {"name": "search", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": f"c{turn}", "content": json.dumps(flights)},
            {"role": "assistant", "content": f"Option {turn}: HAT{turn}00 for $100."},
            {"role": "user", "content": f"Anything cheaper than turn {turn}?"},
        ]
        steps.append(
            make_step(
                session_id=session, messages=list(history), task_kind="reason", max_output_tokens=64
            )
        )
    return steps


def test_a_long_session_goes_economy_at_its_soft_limit_and_stops_at_its_hard_one(fleet):
    session = f"tokens-{uuid.uuid4().hex[:8]}"
    fleet.set_session_budget("acme", session, None, soft_tokens=500, hard_tokens=6000)
    results = []
    for step in long_session(session, 12):  # one at a time, as an agent's loop runs
        [result] = fleet.wait([fleet.submit(step)], timeout=60)
        results.append(result)

    assert len(results) == 12  # every step answered: nothing lost
    statuses = [r.status for r in results]
    first_stop = statuses.index(StepStatus.budget_exceeded)
    assert first_stop >= 2 and all(s is StepStatus.budget_exceeded for s in statuses[first_stop:])
    assert "hard session budget refuses" in results[first_stop].reason

    def economy(r):
        return any(d.stage == "budget" and d.what == "economy" for d in r.decisions)

    # The first call runs as routed (reason -> frontier); past the soft limit, economy mode:
    # the cheapest tier and a tighter prompt.
    assert not economy(results[0]) and results[0].tier == "frontier"
    assert economy(results[1]) and results[1].tier == "cheap"
    assert results[1].tokens_in < results[0].tokens_in * 1.5

    state = fleet.session_budget("acme", session)
    assert state.spent_tokens <= 6000 and state.reserved_tokens == 0
    paid = [r for r in results if r.status is StepStatus.ok]
    assert state.spent_tokens == sum(r.tokens_in + r.tokens_out for r in paid)


def test_an_agent_budget_spans_its_sessions(fleet):
    agent = f"agent-{uuid.uuid4().hex[:6]}"
    fleet.set_agent_budget("acme", agent, None, hard_tokens=2500)
    steps = [
        make_step(session_id=f"{agent}-s{i}", agent=agent, max_output_tokens=32) for i in range(40)
    ]
    results = fleet.wait(fleet.submit_many(steps), timeout=120)
    assert len(results) == 40
    stopped = [r for r in results if r.status is StepStatus.budget_exceeded]
    assert stopped and all("hard agent budget refuses" in r.reason for r in stopped)
    state = fleet.agent_budget("acme", agent)
    assert state.spent_tokens <= 2500 and state.reserved_tokens == 0
