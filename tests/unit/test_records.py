"""The records kept beyond a step's life read back whatever fleet version wrote them."""

import pytest

from producers.bill import calls_of
from producers.report import summarize, unique_steps
from queues.records import (
    SCHEMA_VERSION,
    CachedAnswer,
    DeadLetterRecord,
    LedgerCall,
    LedgerEntry,
    ShadowRecord,
)

# A ledger entry as the fleet wrote it before per-call records and versions existed.
OLD_ENTRY = {
    "ts": 1.0,
    "step_id": "s1",
    "tenant": "acme",
    "agent": "support",
    "session_id": "x",
    "status": "ok",
    "tier": "cheap",
    "model": "gpt-4o-mini",
    "provider": "openai",
    "tokens_in": 100,
    "tokens_out": 10,
    "tokens_cached": 0,
    "cost_usd": 0.002,
    "latency_ms": 30.0,
    "cache_hit": False,
    "escalations": 0,
    "simulated": False,
    "correct": True,
    "a_field_of_a_newer_fleet": {"ignored": True},
}


def test_an_entry_from_before_versions_and_per_call_records_still_reads():
    entry = LedgerEntry.model_validate(OLD_ENTRY)
    assert entry.schema_version == 0 and entry.key == ("acme", "s1")
    assert entry.usage.tokens_in == 100 and entry.tokens_cache_write == 0
    [call] = calls_of(entry)  # one call of the answering model
    assert (call.model, call.cost_usd, call.tokens_in) == ("gpt-4o-mini", 0.002, 100)
    summary = summarize([entry])
    assert summary["by_model"]["gpt-4o-mini"]["calls"] == 1 and summary["quality"] == 1.0


def test_a_written_entry_carries_its_version_and_reads_back_equal():
    entry = LedgerEntry(
        step_id="s2",
        tenant="acme",
        cost_usd=0.01,
        tokens_in=50,
        calls=(LedgerCall(model="m", cost_usd=0.01, tokens_in=50, call_id="c1"),),
        attempts=1,
    )
    stored = entry.to_record()
    assert stored["schema_version"] == SCHEMA_VERSION
    again = LedgerEntry.model_validate(stored)
    assert again.calls == entry.calls and again.schema_version == SCHEMA_VERSION
    assert calls_of(again) == list(entry.calls)
    # An entry with no calls (a cache hit) paid for none, whatever its model.
    hit = LedgerEntry(step_id="s3", model="m", cache_hit=True).to_record()
    assert calls_of(LedgerEntry.model_validate(hit)) == []


def test_two_runs_of_one_step_pay_every_distinct_call_once():
    call = LedgerCall(model="m", cost_usd=0.01, tokens_in=5, call_id="c1")
    other = LedgerCall(model="m", cost_usd=0.02, tokens_in=7, call_id="c2")
    first = LedgerEntry(step_id="s", tenant="t", calls=(call,), cost_usd=0.01)
    later = LedgerEntry(step_id="s", tenant="t", calls=(call, other), cost_usd=0.03)
    [merged] = unique_steps([first, later])
    assert merged.attempts == 2 and merged.tokens_in == 12
    assert merged.cost_usd == 0.03


def test_dead_letters_shadow_records_and_cached_answers_read_old_shapes():
    letter = DeadLetterRecord.model_validate(
        {"step_id": None, "stage": "cache", "reason": "bad", "at": 5.0, "raw": "x"}
    )
    assert letter.envelope is None and letter.schema_version == 0
    shadow = ShadowRecord.model_validate(
        {"step_id": "s", "accepted_model": "a", "shadow_model": "b", "agree": True, "cost_usd": 1}
    )
    assert shadow.agree and shadow.tokens_cached == 0
    exact = CachedAnswer.model_validate({"answer": "B", "step_id": "s", "tier": "cheap"})
    assert exact.question == "" and exact.model is None


def test_budget_stops_are_counted_apart_from_answer_quality():
    from producers.report import summarize
    from queues.records import LedgerEntry

    entries = [
        LedgerEntry(step_id="a", status="ok", correct=True),
        LedgerEntry(step_id="b", status="ok", correct=False),
        LedgerEntry(step_id="c", status="dead_lettered"),
        LedgerEntry(step_id="d", status="budget_exceeded"),
    ]
    summary = summarize(entries)
    assert summary["quality"] == pytest.approx(1 / 3, abs=1e-4) and summary["budget_stops"] == 1
