"""The session step cap that stops a runaway agent loop: counted once per step, however
often its message comes, on the memory double and on Redis."""

from queues.messages import StepStatus
from queues.topology import Stage
from workers import cache
from workers.stores.session_steps import RedisSessionSteps
from workers.testing import envelope, make_runtime


def test_the_step_past_the_cap_ends_budget_exceeded_and_a_redelivery_counts_once():
    rt, bus, _ = make_runtime(session_max_steps=3)
    steps = [envelope(step_id=f"loop-{i}", session_id="s-loop") for i in range(3)]
    for env in [*steps, steps[0]]:  # the first one's message comes twice
        cache.handle(env, rt)
    assert [stage for stage, _, _ in bus.sent] == [Stage.compress] * 4 and not bus.finalized
    cache.handle(envelope(step_id="loop-3", session_id="s-loop"), rt)
    [(env, outcome)] = bus.finalized
    assert outcome.status is StepStatus.budget_exceeded
    assert "session step cap: this is step 4 of session s-loop (cap 3)" in outcome.reason
    cache.handle(envelope(step_id="other-0", session_id="s-other"), rt)  # other sessions go on
    assert len(bus.finalized) == 1


def test_redis_counts_distinct_steps_and_forgets_an_idle_session(redis_client):
    steps = RedisSessionSteps(redis_client, ttl_s=60)
    assert [steps.count("t", "s", sid) for sid in ("a", "b", "a")] == [1, 2, 2]
    assert steps.count("u", "s", "a") == 1  # another tenant's session of the same name
    assert 0 < redis_client.ttl("tf:steps:t:s") <= 60
