"""Acceptance policies for providers with no log-probabilities, through real workers
against the provider test server: a judge model's score, and a model's own word."""

from collections.abc import Iterator

import pytest

from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from queues.messages import StepStatus
from tests.integration.conftest import settings_for
from tests.integration.test_api_providers import KEY, TABLE, ask
from tests.provider_handle import ServerHandle

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def judged_fleet(redis_server, provider_server: ServerHandle, tmp_path_factory) -> Iterator[Fleet]:
    """The provider tables with the mid tier (Anthropic, no log-probabilities) accepting on
    a judge's word (gpt-4o-mini scores each passing answer) and the cheap tier on its own
    word (self-reported confidence); 0.5 needed."""
    text = TABLE.read_text()
    text = text.replace(
        "[tiers.mid]", '[tiers.mid]\nacceptance = "judge"\njudge = "gpt-4o-mini"', 1
    )
    text = text.replace("[tiers.cheap]", '[tiers.cheap]\nconfidence = "self_report"', 1)
    path = tmp_path_factory.mktemp("judged") / "judged.toml"
    path.write_text(text)
    settings = settings_for(
        redis_server,
        db=13,
        tier_table=path,
        quality=0.5,
        **provider_server.settings_fields(KEY),
    )
    local = LocalFleet(
        settings,
        groups=[
            "cache",
            "compress",
            "classify",
            "infer-cheap",
            "infer-mid",
            "infer-frontier",
            "finalize",
        ],
    )
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local.start(own_redis=False)
        try:
            yield fleet
        finally:
            local.stop()


def test_a_judge_scores_an_answer_from_a_provider_without_logprobs(judged_fleet, provider_server):
    accepted = ask(judged_fleet, "Plan my rebooking, judged.", task_kind="plan")
    assert accepted.status is StepStatus.ok and accepted.model == "claude-haiku-4-5"
    assert [d.what for d in accepted.decisions][-2:] == ["judge->gpt-4o-mini", "accept"]
    assert "scores it 0.90" in accepted.decisions[-1].why
    # The judge's call is the step's: two calls on its bill.
    [entry] = [e for e in judged_fleet.ledger() if e.step_id == accepted.step_id]
    assert [c.model for c in entry.calls] == ["claude-haiku-4-5", "gpt-4o-mini"]

    provider_server.faults({"model": "gpt-4o-mini", "contains": "DOUBTFUL", "malformed": True})
    doubted = ask(judged_fleet, "Plan my rebooking, DOUBTFUL.", task_kind="plan")
    assert doubted.status is StepStatus.ok and doubted.tier == "frontier"
    assert any("judge gpt-4o-mini gave 0.15 < 0.50" in d.why for d in doubted.decisions)


def test_a_self_reported_confidence_is_read_off_the_answer_and_judged(
    judged_fleet, provider_server
):
    sure = ask(judged_fleet, "Can I change my flight, rated?")
    assert sure.status is StepStatus.ok and sure.tier == "cheap"
    assert "Confidence" not in (sure.answer or "")  # the line is taken off the answer
    assert "confidence 0.90" in sure.decisions[-1].why

    provider_server.faults({"model": "gpt-4o-mini", "contains": "UNSURE", "malformed": True})
    unsure = ask(judged_fleet, "Can I change my flight, UNSURE?")
    assert unsure.escalations >= 1
    assert any("confidence 0.15 < 0.50" in d.why for d in unsure.decisions)
