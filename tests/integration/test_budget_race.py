"""Hard budgets under a race: 64 steps submitted at once from 8 producer processes, answered
by 4 inference worker processes, each call billed 50% below to 50% above what it reserved.
The limit holds for everything reserved; what calls cost beyond their reservations is
counted, in the budget and in the ledger, to the nano-dollar."""

import multiprocessing
import random
import time
import uuid

import pytest

from policies.money import NANO
from producers.fleet import Fleet
from producers.report import summarize
from queues.messages import StepStatus
from queues.settings import Settings
from queues.topology import WorkerGroup
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration
PRODUCERS, STEPS_EACH, EXTRA_WORKERS = 8, 8, 3


def produce(broker_url: str, session: str, seed: int, start_at: float) -> list[str]:
    """One producer process: 8 steps, each billed at its own factor in [0.5, 1.5]."""
    rng = random.Random(seed)
    steps = [
        make_step(
            session_id=session,
            max_output_tokens=200,
            labels={"difficulty": 0.0, "output_tokens": 400, "bill_factor": rng.uniform(0.5, 1.5)},
        )
        for _ in range(STEPS_EACH)
    ]
    with Fleet(Settings(broker_url=broker_url)) as fleet:
        time.sleep(max(0.0, start_at - time.time()))  # all eight publish at the same moment
        return [handle.id for handle in fleet.submit_many(steps)]


def test_64_steps_from_8_processes_with_costs_off_by_half_hold_the_hard_limit(fleet, local_fleet):
    cheap = next(g for g in local_fleet.groups() if g.name == "infer-cheap")
    extra = [
        WorkerGroup(f"infer-cheap-{i}", cheap.queues, cheap.prefetch_multiplier)
        for i in range(EXTRA_WORKERS)
    ]
    local_fleet.start_groups(extra)
    try:
        session = f"race-{uuid.uuid4().hex[:8]}"
        limit = 0.0025  # about 20 of these calls' reservations
        fleet.set_session_budget("acme", session, limit)
        start_at = time.time() + 2.0
        context = multiprocessing.get_context("spawn")
        with context.Pool(PRODUCERS) as pool:
            args = [(fleet.settings.broker_url, session, seed, start_at) for seed in range(8)]
            ids = [i for batch in pool.starmap(produce, args) for i in batch]
        results = fleet.wait([fleet.app.AsyncResult(i) for i in ids], timeout=180)
    finally:
        for group in extra:
            local_fleet.stop_group(group.name)

    assert len(results) == 64  # every step answered: nothing lost
    statuses = {r.status for r in results}
    assert statuses == {StepStatus.ok, StepStatus.budget_exceeded}
    state = fleet.session_budget("acme", session)
    assert state.reserved_nano == 0  # every reservation settled or released
    entries = [e for e in fleet.ledger() if e.session_id == session]
    assert len(entries) == 64
    calls = [c for e in entries for c in e.calls]
    spent = sum(c.cost_usd for c in calls)
    assert abs(spent * NANO - state.spent_nano) <= len(calls)  # rounding only
    # The excess over each call's reservation is what the budget counted as overshoot ...
    excess = sum(max(0.0, c.cost_usd - c.reserved_usd) for c in calls)
    assert excess > 0 and any(c.overshoot_usd == 0 for c in calls)
    assert abs(excess * NANO - state.overshoot_nano) <= len(calls)
    assert sum(c.overshoot_usd for c in calls) == pytest.approx(excess, abs=len(calls) / NANO)
    # ... and the limit holds for everything that was reserved: spend past it is overshoot.
    assert state.spent_nano - state.overshoot_nano <= state.limit_nano == round(limit * NANO)
    # The report shows it.
    summary = summarize(entries)
    assert summary["overshoot_usd"] == pytest.approx(excess, abs=len(calls) / NANO)
    assert summary["overshoot_calls"] == sum(1 for c in calls if c.overshoot_usd > 0)
