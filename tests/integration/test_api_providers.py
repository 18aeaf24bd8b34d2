"""The API adapters through real Celery workers, against the provider test server: plain and
structured answers, escalation on a schema failure, a 429 then success, 5xx exhausted to
tf.dead, secrets kept out of logs, and the ledger reconciled with the provider's own bill."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from producers.bill import summarize_bill
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.report import by_model, unique_steps
from queues.messages import StepResult, StepStatus
from tests.integration.conftest import settings_for
from tests.provider_handle import POLICY, SCHEMA, ServerHandle

pytestmark = pytest.mark.integration

TABLE = Path(__file__).parents[2] / "policies" / "tables" / "providers.toml"
KEY = "sk-proj-T3stKey0nlyF0rL00pback"


@pytest.fixture(scope="module")
def api_fleet(
    redis_server, provider_server: ServerHandle, tmp_path_factory
) -> Iterator[tuple[Fleet, LocalFleet]]:
    provider_server.post("/_reset", {})
    provider_server.post("/_config", {"batch_delay_s": 0.3})
    settings = settings_for(
        redis_server,
        db=3,
        tier_table=TABLE,
        **provider_server.settings_fields(KEY),
        provider_max_attempts=2,
        max_transient_retries=1,
        batch_job_wait_s=0.2,
        batch_poll_interval_s=0.3,
    )
    local = LocalFleet(settings, log_dir=tmp_path_factory.mktemp("api-fleet-logs"))
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local.start(own_redis=False)
        try:
            yield fleet, local
        finally:
            local.stop()


def ask(fleet: Fleet, text: str, **fields: object) -> StepResult:
    step = {
        "tenant": "acme",
        "agent": "support",
        "session_id": f"s-{uuid.uuid4().hex[:8]}",
        "messages": [{"role": "system", "content": POLICY}, {"role": "user", "content": text}],
        **fields,
    }
    return fleet.wait([fleet.submit(step)], timeout=60)[0]


def test_plain_answers_from_both_providers(api_fleet):
    fleet, _ = api_fleet
    openai_answer = ask(fleet, "Can I change my flight?")
    anthropic_answer = ask(fleet, "Plan my rebooking.", task_kind="plan")
    assert (openai_answer.status, openai_answer.provider) == (StepStatus.ok, "openai")
    assert (anthropic_answer.status, anthropic_answer.provider) == (StepStatus.ok, "anthropic")
    assert anthropic_answer.tokens_cache_write > 0  # the static prefix went into its cache
    assert openai_answer.answer and anthropic_answer.answer


def test_a_session_reads_its_growing_prefix_from_the_cache(api_fleet):
    fleet, _ = api_fleet
    session = f"long-{uuid.uuid4().hex[:6]}"
    history: list[dict[str, str]] = [{"role": "system", "content": POLICY}]
    results = []
    for turn in range(4):
        history.append({"role": "user", "content": f"turn {turn}: what about flight {turn}?"})
        step = {"tenant": "acme", "agent": "support", "session_id": session, "task_kind": "plan"}
        result = fleet.wait([fleet.submit({**step, "messages": history})], timeout=60)[0]
        assert result.status is StepStatus.ok
        history.append({"role": "assistant", "content": result.answer or ""})
        results.append(result)
    # From the second turn on, all but the newest turn comes from the cache.
    assert all(r.tokens_cached > 0.9 * r.tokens_in for r in results[1:])


def test_structured_answers_fit_the_schema(api_fleet):
    fleet, _ = api_fleet
    result = ask(fleet, "Refund or rebook?", response_schema=SCHEMA)
    assert result.status is StepStatus.ok and result.provider == "openai"
    assert json.loads(result.answer or "")["action"] in ("refund", "rebook")


def test_a_schema_failure_escalates_to_the_next_tier(api_fleet, provider_server):
    fleet, _ = api_fleet
    provider_server.faults({"model": "gpt-4o-mini", "contains": "BROKEN-JSON", "malformed": True})
    result = ask(fleet, "BROKEN-JSON: refund or rebook?", response_schema=SCHEMA)
    assert result.status is StepStatus.ok and result.escalations == 1
    assert result.model == "claude-haiku-4-5"
    assert json.loads(result.answer or "")["action"] in ("refund", "rebook")
    assert any(d.what == "escalate->mid" for d in result.decisions)


def test_a_closed_schema_goes_strict_through_the_fleet(api_fleet, provider_server):
    fleet, _ = api_fleet
    before = provider_server.stats().get("openai.strict", 0)
    closed = {**SCHEMA, "additionalProperties": False}
    result = ask(fleet, "Refund or rebook, strictly?", response_schema=closed)
    assert result.status is StepStatus.ok and result.provider == "openai"
    assert json.loads(result.answer or "")["action"] in ("refund", "rebook")
    assert provider_server.stats().get("openai.strict", 0) == before + 1


def test_an_answer_cut_at_max_tokens_is_never_accepted(api_fleet):
    fleet, _ = api_fleet
    result = ask(fleet, "Explain the whole rebooking policy.", max_output_tokens=4)
    # Cut at every tier (each was asked for 4 tokens): escalated twice, then dead-lettered
    # with the reason, never answered with a fragment.
    assert result.status is StepStatus.dead_lettered and result.escalations == 2
    assert [d.what for d in result.decisions if d.what.startswith("escalate")] == [
        "escalate->mid",
        "escalate->frontier",
    ]
    assert "cut off at max_tokens" in result.reason
    assert result.cost_usd > 0  # the cut answers were paid for, and stay on the bill


def test_a_429_is_retried_then_answered(api_fleet, provider_server):
    fleet, _ = api_fleet
    provider_server.faults({"contains": "BUSY-HOUR", "status": 429, "retry_after": 0.2})
    result = ask(fleet, "BUSY-HOUR: is my seat confirmed?")
    assert result.status is StepStatus.ok
    assert provider_server.stats()["openai.error.429"] == 1


def test_5xx_exhausted_lands_in_tf_dead_with_the_reason(api_fleet, provider_server):
    fleet, _ = api_fleet
    provider_server.faults({"contains": "ALWAYS-DOWN", "status": 503, "times": -1})
    result = ask(fleet, "ALWAYS-DOWN: where is my bag?")
    provider_server.faults()
    assert result.status is StepStatus.dead_lettered
    assert "503" in (result.reason or "") and "retries exhausted" in (result.reason or "")
    dead = [d.record for d in fleet.dead_letters() if d.record.step_id == result.step_id]
    assert dead and "503" in dead[0].reason


def test_the_key_never_reaches_logs_ledger_or_dead_letters(api_fleet, provider_server):
    fleet, local = api_fleet
    provider_server.faults({"contains": "BAD-REQUEST", "status": 400})
    assert ask(fleet, "BAD-REQUEST: hello").status is StepStatus.dead_lettered
    logs = "".join(p.read_text(errors="replace") for p in local.log_dir.glob("*.log"))
    assert "provider_failed" in logs  # the logs were captured, and the failure is in them
    assert KEY not in logs
    assert KEY not in json.dumps([e.to_record() for e in fleet.ledger()])
    assert KEY not in json.dumps([d.record.to_record() for d in fleet.dead_letters()])


def test_batch_lane_steps_are_answered_at_the_batch_discount(api_fleet):
    fleet, _ = api_fleet
    steps = [
        {
            "tenant": "acme",
            "agent": "nightly",
            "session_id": f"n-{uuid.uuid4().hex[:8]}",
            "lane": "batch",
            "task_kind": kind,
            "messages": [{"role": "system", "content": POLICY}, {"role": "user", "content": q}],
        }
        for kind in ("summarize", "plan")
        for q in (f"summary {i} {uuid.uuid4().hex[:6]}" for i in range(4))
    ]
    results = fleet.wait(fleet.submit_many(steps), timeout=60)
    assert {r.status for r in results} == {StepStatus.ok}
    assert {r.provider for r in results} == {"openai", "anthropic"}
    assert all(any(d.what == "batch" for d in r.decisions) for r in results)


LOOKUP_CALL = {"name": "lookup", "arguments": "{}"}
LOOKUP_TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}


WORDS = [
    "window",
    "aisle",
    "wing",
    "galley",
    "exit",
    "front",
    "rear",
    "middle",
    "bulkhead",
    "upper",
    "lower",
    "spare",
]


def tool_history(exchanges: int) -> list[dict[str, object]]:
    """An agent's history: a system prompt, then lookups whose results fill many tokens."""
    history: list[dict[str, object]] = [
        {"role": "system", "content": POLICY},
        {"role": "user", "content": "Rebook my trips."},
    ]
    for i in range(exchanges):
        call = {"id": f"c{i}", "type": "function", "function": LOOKUP_CALL}
        remark = ["quiet", "crowded", "late", "early", "smooth"][i % 5]
        rows = [{"seat": WORDS[n], "remark": f"{remark} {WORDS[(n + i) % 12]}"} for n in range(12)]
        history += [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": json.dumps({"options": rows})},
        ]
    history.append({"role": "user", "content": "Which one do you suggest?"})
    return history


def test_each_tier_carries_the_history_its_cache_prices_bill_least(api_fleet):
    fleet, _ = api_fleet
    step = {
        "tenant": "acme",
        "agent": "support",
        "messages": tool_history(30),
        "tools": [LOOKUP_TOOL],
    }
    # Anthropic (mid, for plans): cached reads at 0.1x, writes at 1.25x: the whole history.
    # OpenAI (cheap, for chat): reads at 0.5x, no write premium: the pruned one.
    plan, chat = fleet.wait(
        [
            fleet.submit({**step, "session_id": "hist-plan", "task_kind": "plan"}),
            fleet.submit({**step, "session_id": "hist-chat", "task_kind": "chat"}),
        ],
        timeout=60,
    )
    assert (plan.status, plan.provider, chat.status, chat.provider) == (
        StepStatus.ok,
        "anthropic",
        StepStatus.ok,
        "openai",
    )
    [chosen] = [d for d in plan.decisions if d.what == "history=whole"]
    assert "re-reading the" in chosen.why
    assert not any(d.what.startswith("history=") for d in chat.decisions)
    calls = {e.step_id: e.calls for e in fleet.ledger() if e.session_id.startswith("hist-")}
    assert [c.history for c in calls[plan.step_id]] == ["whole"]
    assert [c.history for c in calls[chat.step_id]] == ["pruned"]
    # The whole history is the longer prompt, and the pruned one says what it left out.
    assert plan.tokens_in > chat.tokens_in


def test_the_ledger_reconciles_with_the_providers_bill_per_model(api_fleet, provider_server):
    """After the mixed run above (interactive, cached prefixes, escalation, batch)."""
    fleet, _ = api_fleet
    ledger = by_model(fleet.ledger())
    bill = provider_server.bill()["models"]
    assert set(ledger) == set(bill)
    assert sum(line["batch_calls"] for line in bill.values()) >= 8
    for model, line in bill.items():
        assert ledger[model]["calls"] == line["calls"]
        assert ledger[model]["batch_calls"] == line["batch_calls"]
        assert ledger[model]["tokens_cached"] == line["cached_tokens"]
        assert ledger[model]["cost_usd"] == pytest.approx(line["usd"], rel=1e-3)


def test_the_calls_stream_is_the_providers_bill(api_fleet, provider_server):
    """After the same run: every call recorded as it returned, each once, on a step."""
    fleet, _ = api_fleet
    bill = summarize_bill(fleet.calls(), unique_steps(fleet.ledger()))
    provider = provider_server.bill()
    assert bill["provider_calls"] == sum(line["calls"] for line in provider["models"].values())
    assert bill["billed_usd"] == pytest.approx(provider["total_usd"], rel=1e-3)
    assert bill["duplicate_calls"] == 0 and bill["calls_outside_steps"] == 0
