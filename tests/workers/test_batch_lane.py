"""The batch lane with plain test doubles: parking, job submission, fan-out at the discount,
failed and expired items."""

from pathlib import Path

from queues.messages import StepStatus
from queues.step import Lane
from queues.topology import Stage
from workers.batch_lane import poll
from workers.errors import PermanentError, TransientError
from workers.infer import handle_batch
from workers.ports import Completion
from workers.testing import BatchFunctionProvider, MemoryBudgets, envelope, infer_hops, make_runtime

# The API providers' table: its models have the providers' batch discount.
TABLE = Path(__file__).parents[2] / "policies" / "tables" / "providers.toml"
MODEL = "gpt-4o-mini"


def batch_envs(n: int, **fields: object) -> list[list[str]]:
    return infer_hops(
        *(envelope(step_id=f"b{i}", tier="cheap", lane=Lane.batch, **fields) for i in range(n))
    )


def test_batch_lane_steps_are_parked_with_their_budget_reserved_not_called():
    provider = BatchFunctionProvider(lambda r: Completion("x", 100, 10))
    budgets = MemoryBudgets()
    rt, bus, _ = make_runtime(provider, budgets=budgets, tier_table=TABLE, batch_job_max_steps=10)
    handle_batch(batch_envs(3), rt)
    assert provider.calls == [] and provider.jobs == {}  # nothing called live, no job yet
    assert rt.batch_jobs.pending(MODEL) == 3
    assert len(budgets.held) == 3 and not bus.finalized and not bus.sent


def test_a_full_model_submits_one_job_and_the_poll_fans_out_at_half_price():
    provider = BatchFunctionProvider(lambda r: Completion("done", 100, 10))
    budgets = MemoryBudgets()
    rt, bus, _ = make_runtime(provider, budgets=budgets, tier_table=TABLE, batch_job_max_steps=4)
    handle_batch(batch_envs(4), rt)
    [requests] = provider.jobs.values()
    assert len(requests) == 4 and rt.batch_jobs.pending(MODEL) == 0
    poll(rt)
    assert not bus.finalized  # still running
    provider.ended = True
    poll(rt)
    assert [o.status for _, o in bus.finalized] == [StepStatus.ok] * 4
    env, _ = bus.finalized[0]
    [cost] = env.costs
    full = rt.table.model_of("cheap").cost(100, 10)
    assert cost.batch and cost.cost_usd == rt.table.model_of("cheap").cost(100, 10, batch=True)
    assert cost.cost_usd == full / 2
    assert budgets.held == {} and rt.batch_jobs.jobs() == []  # settled, job forgotten


def test_a_waiting_step_is_submitted_once_its_wait_is_up():
    provider = BatchFunctionProvider(lambda r: Completion("done", 100, 10))
    rt, _, _ = make_runtime(provider, tier_table=TABLE, batch_job_max_steps=100, batch_job_wait_s=0)
    handle_batch(batch_envs(2), rt)
    poll(rt)
    assert [len(r) for r in provider.jobs.values()] == [2]


def test_a_redelivered_message_does_not_park_its_step_twice():
    provider = BatchFunctionProvider(lambda r: Completion("done", 100, 10))
    rt, _, _ = make_runtime(provider, tier_table=TABLE, batch_job_max_steps=100)
    wire = batch_envs(1)
    handle_batch(wire, rt)
    handle_batch(wire, rt)
    assert rt.batch_jobs.pending(MODEL) == 1


def test_expired_items_go_back_through_the_lane_and_failed_jobs_are_dead_lettered():
    expired = BatchFunctionProvider(lambda r: TransientError("openai batch: expired unanswered"))
    rt, bus, _ = make_runtime(expired, tier_table=TABLE, batch_job_max_steps=1)
    handle_batch(batch_envs(1), rt)
    expired.ended = True
    poll(rt)
    [(stage, env, countdown)] = bus.sent
    assert stage is Stage.infer and env.retries == 1 and env.step.lane is Lane.batch
    assert countdown is not None and "expired" in env.decisions[-1].why

    refused = BatchFunctionProvider(lambda r: Completion("x", 1, 1))
    rt, bus, _ = make_runtime(refused, tier_table=TABLE, batch_job_max_steps=1)
    handle_batch(batch_envs(1), rt)
    refused.ended, refused.job_error = True, "openai batch failed: invalid input file"
    poll(rt)
    [(_, outcome)] = bus.finalized
    assert outcome.status is StepStatus.dead_lettered and "invalid input" in (outcome.reason or "")


def test_a_provider_without_a_batch_api_answers_batch_steps_live():
    rt, bus, _ = make_runtime(batch_job_max_steps=1)  # the default double has no batch API
    handle_batch(batch_envs(2), rt)
    assert [o.status for _, o in bus.finalized] == [StepStatus.ok] * 2
    assert rt.batch_jobs.jobs() == []


def test_a_fan_out_cut_short_leaves_the_rest_for_the_next_poll():
    provider = BatchFunctionProvider(lambda r: Completion("done", 100, 10))
    rt, bus, _ = make_runtime(provider, tier_table=TABLE, batch_job_max_steps=4)
    handle_batch(batch_envs(4), rt)
    provider.ended = True
    finalize = bus.finalize

    def dies_on_the_third(env, outcome):
        if len(bus.finalized) == 2:
            raise ConnectionError("the worker died")
        finalize(env, outcome)

    bus.finalize = dies_on_the_third  # type: ignore[method-assign]
    poll(rt)  # logged; the job keeps the two steps not yet fanned out
    assert len(rt.batch_jobs.items(rt.batch_jobs.jobs()[0].job_id)) == 2
    bus.finalize = finalize  # type: ignore[method-assign]
    poll(rt)
    assert sorted(e.step.step_id for e, _ in bus.finalized) == ["b0", "b1", "b2", "b3"]


def test_a_job_the_provider_no_longer_knows_is_dead_lettered_not_polled_forever():
    provider = BatchFunctionProvider(lambda r: Completion("done", 100, 10))
    rt, bus, _ = make_runtime(provider, tier_table=TABLE, batch_job_max_steps=2)
    handle_batch(batch_envs(2), rt)

    def unknown(batch_id: str):
        raise PermanentError(f"openai answered 404: no batch {batch_id}")

    provider.poll_batch = unknown  # type: ignore[method-assign]
    poll(rt)
    assert [o.status for _, o in bus.finalized] == [StepStatus.dead_lettered] * 2
    assert "404" in (bus.finalized[0][1].reason or "") and rt.batch_jobs.jobs() == []


def test_a_submitter_that_died_after_the_provider_made_the_job_makes_no_second_one():
    provider = BatchFunctionProvider(lambda r: Completion("done", 100, 10))
    rt, bus, _ = make_runtime(
        provider, tier_table=TABLE, batch_job_max_steps=2, batch_submit_grace_s=0
    )
    recorded = rt.batch_jobs.submitted

    def died(job, provider_batch_id, now):  # the provider has the job; Redis never hears
        raise ConnectionError("the submitter died")

    rt.batch_jobs.submitted = died  # type: ignore[method-assign]
    handle_batch(batch_envs(2), rt)  # parked, taken, submitted ... and the worker died
    assert len(provider.jobs) == 1 and rt.batch_jobs.jobs()[0].state == "submitting"
    rt.batch_jobs.submitted = recorded  # type: ignore[method-assign]
    poll(rt)  # the job is stranded "submitting": the poller looks it up, creates nothing
    assert len(provider.jobs) == 1 and rt.batch_jobs.jobs()[0].state == "submitted"
    provider.ended = True
    poll(rt)
    assert [o.status for _, o in bus.finalized] == [StepStatus.ok] * 2
