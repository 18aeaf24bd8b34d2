"""Prompts a model cannot hold, through real workers: routed to a tier whose model holds
them, compressed harder to fit, or dead-lettered unsent with the reason; never sent to
fail. The tier table gives its models small contexts (cheap 400, mid 800, frontier 1400)."""

import json
import uuid

import pytest

from policies.tables import DEFAULT_TIER_TABLE
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from queues.messages import StepStatus
from tests.integration.conftest import settings_for

pytestmark = pytest.mark.integration

WORDS = [
    "the",
    "passenger",
    "asked",
    "about",
    "the",
    "fare",
    "rules",
    "for",
    "the",
    "rebooked",
    "flight",
    "to",
    "Lisbon",
]


def text(tokens: int, seed: int = 0) -> str:
    return " ".join(f"{WORDS[(i + seed) % len(WORDS)]}{i % 7}" for i in range(tokens // 2))


@pytest.fixture(scope="module")
def small_fleet(redis_server, tmp_path_factory):
    table = DEFAULT_TIER_TABLE.read_text()
    for model, context in (("128000", 400), ("200000", 800)):
        table = table.replace(f"context_tokens = {model}", f"context_tokens = {context}", 1)
    table = table.replace("context_tokens = 128000", "context_tokens = 1400", 1)
    path = tmp_path_factory.mktemp("table") / "small.toml"
    path.write_text(table)
    # A history budget larger than any context here: fitting is the refit's job alone.
    settings = settings_for(redis_server, db=12, tier_table=path, history_budget_tokens=6000)
    local = LocalFleet(settings)
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local.start(own_redis=False)
        try:
            yield fleet
        finally:
            local.stop()


def ask(fleet, messages):
    step = {
        "tenant": "acme",
        "agent": "support",
        "session_id": f"ctx-{uuid.uuid4().hex[:6]}",
        "messages": messages,
        "max_output_tokens": 50,
        "labels": {"difficulty": 0.0},
    }
    return fleet.wait([fleet.submit(step)], timeout=60)[0]


def test_a_prompt_the_cheap_model_cannot_hold_goes_to_a_tier_that_can(small_fleet):
    result = ask(small_fleet, [{"role": "user", "content": text(500)}])
    assert result.status is StepStatus.ok and result.tier == "mid"
    [moved] = [d for d in result.decisions if d.what == "escalate->mid"]
    assert "holds 400 tokens" in moved.why
    assert len([d for d in result.decisions if d.stage == "infer"]) >= 2  # never sent cheap


def test_a_history_no_model_holds_is_compressed_to_fit(small_fleet):
    messages = [{"role": "system", "content": "You are an airline agent."}]
    for i in range(12):
        call = {
            "id": f"c{i}",
            "type": "function",
            "function": {"name": "lookup", "arguments": "{}"},
        }
        messages += [
            {"role": "user", "content": f"question {i}: {text(60, i)}"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {
                "role": "tool",
                "tool_call_id": f"c{i}",
                "content": json.dumps({"notes": text(400, i)}),
            },
        ]
    messages.append({"role": "user", "content": "So which flight can I take?"})
    result = ask(small_fleet, messages)
    assert result.status is StepStatus.ok, result.reason
    [refit] = [d for d in result.decisions if d.what == "refit"]
    assert "compressed to fit 1400" in refit.why
    assert result.tokens_in + 50 <= 1400


def test_a_prompt_nothing_can_hold_even_compressed_is_dead_lettered_unsent(small_fleet):
    # The static prefix (here a system prompt) is never compressed: nothing can make it fit.
    policy = " ".join(uuid.uuid4().hex for _ in range(300))
    result = ask(
        small_fleet, [{"role": "system", "content": policy}, {"role": "user", "content": "Hi"}]
    )
    assert result.status is StepStatus.dead_lettered
    assert "no model the step may reach holds it even compressed" in result.reason
    assert result.cost_usd == 0  # never sent
