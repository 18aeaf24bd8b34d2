"""The best-effort close and the session step cap through real workers and Redis."""

import uuid

import pytest

from queues.messages import StepStatus
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration


def test_a_step_over_its_hard_budget_closes_on_the_cheapest_tier_within_the_allowance(fleet):
    session = f"close-{uuid.uuid4().hex[:6]}"
    fleet.set_session_budget("acme", session, 1e-9)  # spent before it starts
    closes, stops = (
        make_step(session_id=session, on_budget="close"),
        make_step(session_id=session),
    )
    closed, stopped = fleet.wait(fleet.submit_many([closes, stops]), timeout=60)
    assert closed.status is StepStatus.ok and closed.answer and closed.tier == "cheap"
    assert closed.reason.startswith("best-effort close: hard session budget refuses")
    assert [d.what for d in closed.decisions].count("close") == 1
    assert stopped.status is StepStatus.budget_exceeded and not stopped.answer
    state = fleet.session_budget("acme", session)
    allowance = fleet.settings.close_allowance_usd
    assert 0 < state.spent_nano <= state.limit_nano + allowance * 1e9  # within the allowance
    assert state.reserved_nano == 0 and state.overshoot_nano == 0
    [entry] = [e for e in fleet.ledger() if e.step_id == closes.step_id]
    assert entry.cost_usd == closed.cost_usd > 0  # on the bill
