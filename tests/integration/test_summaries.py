"""The cheap tier summarizes what the history budget drops: a summarize step of its own
through the real fleet, charged to the session, and carried by the session's later calls."""

from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from queues import keys
from queues.keys import summaries as summaries_key
from queues.messages import StepStatus
from tests.integration.conftest import settings_for, wait_for
from tests.integration.test_step_path import make_step
from tests.unit.test_compression import long_session


def test_dropped_exchanges_are_summarized_by_the_cheap_tier(redis_server):
    settings = settings_for(
        redis_server,
        db=7,
        summarize_dropped=True,
        keep_last_messages=2,
        window_stride=1,
        history_budget_tokens=60,
    )
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local = LocalFleet(settings).start(own_redis=False)
        try:
            messages = [m.model_dump(exclude_none=True) for m in long_session()]
            first = make_step(session_id="sum-1", messages=messages)
            [r1] = fleet.wait(fleet.submit_many([first]), timeout=60)
            assert r1.status is StepStatus.ok, r1.reason
            [squeezed] = [d for d in r1.decisions if d.stage == "compress"]
            assert "asked the cheap tier to summarize 2 dropped exchanges" in squeezed.why

            def summary_entries():
                entries = [e for e in fleet.ledger() if e.task_kind == "summarize"]
                return entries if len(entries) == 2 else None

            for entry in wait_for(summary_entries):
                assert entry.step_id.startswith(f"{first.step_id}.summary.")
                assert entry.status == "ok"
                # It starts at the cheap tier (and climbs like any step whose answer fails).
                [result] = fleet.wait(
                    [fleet.app.AsyncResult(keys.result_id(entry.tenant, entry.step_id))],
                    timeout=5,
                )
                [routed] = [d for d in result.decisions if d.stage == "classify"]
                assert routed.what == "tier=cheap"
                assert entry.cost_usd > 0
                assert (entry.tenant, entry.agent, entry.workflow) == (
                    first.tenant,
                    first.agent,
                    first.workflow,
                )
                assert entry.session_id == "sum-1"
            stored = wait_for(lambda: fleet.redis.hlen(summaries_key(first.tenant, "sum-1")) == 2)
            assert stored

            # The session's next call carries the summaries, and asks for nothing more.
            later = [*messages, {"role": "assistant", "content": "done"}]
            later.append({"role": "user", "content": "thanks, one more thing"})
            second = make_step(session_id="sum-1", messages=later)
            [r2] = fleet.wait(fleet.submit_many([second]), timeout=60)
            [squeezed] = [d for d in r2.decisions if d.stage == "compress"]
            assert "2 dropped exchanges told in short" in squeezed.why
            assert "asked the cheap tier" not in squeezed.why
            # Every cent is the session's: the budget's spend is the ledger's, summaries included.
            session = [e for e in fleet.ledger() if e.session_id == "sum-1"]
            assert len(session) == 4
            spent = fleet.session_budget(first.tenant, "sum-1").spent_nano
            assert abs(spent - round(sum(e.cost_usd for e in session) * 1e9)) <= len(session)
        finally:
            local.stop()
