"""What a dropped tool exchange still tells: the facts of its results the prompt does not
show elsewhere, by field, in the omitted note, paid from the history budget."""

import json
from dataclasses import replace

from policies.compression import CompressionPlan, compress
from policies.history import fill_budget, units
from policies.tool_results import fact_tokens
from queues.step import ChatMessage
from workers.ml.tokenizer import BpeCounter

COUNTER = BpeCounter()
SYSTEM = ChatMessage(role="system", content="You are an airline agent.")

RESERVATION = {
    "reservation_id": "ZFA04Y",
    "status": "active",
    "cabin": "economy",
    "flights": [
        {"flight_number": "HAT001", "origin": "JFK", "date": "2024-05-01"},
        {"flight_number": "HAT002", "origin": "ORD", "date": "2024-05-03"},
    ],
    "passengers": [{"name": "Mia", "seat": "window"}],
    "remarks": "prefers aisle near row 12 " * 20,
}


def tool_pair(call_id: str, payload: str) -> list[ChatMessage]:
    return [
        ChatMessage.model_validate(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": call_id,
                        "function": {"name": "get_reservation", "arguments": '{"id": "x"}'},
                    }
                ],
            }
        ),
        ChatMessage(role="tool", tool_call_id=call_id, content=payload),
    ]


def test_fact_tokens_keep_ids_numbers_and_codes_by_field_and_row():
    seen = {"HAT001", "JFK", "2024-05-01", "ORD"}  # shown elsewhere in the prompt
    groups = fact_tokens(json.dumps(RESERVATION), seen)
    assert groups == [
        ("reservation_id", ["ZFA04Y"]),
        # A row whose facts are all shown goes; one with a new fact keeps them all.
        ("flights", ["HAT002 ORD 2024-05-03"]),
        ("remarks", ["12"]),  # a long free-text field: its facts alone
    ]
    # Field names, statuses, names and prose go; what was new is now seen.
    assert {"ZFA04Y", "HAT002", "12"} <= seen and "reservation_id" not in seen
    assert fact_tokens(json.dumps(RESERVATION), seen) == []


def test_plain_text_results_keep_their_facts():
    assert fact_tokens("Booked.\nConfirmation: K9X2LQ\nThank you", set()) == [
        ("records", ["K9X2LQ"])
    ]


def session() -> list[ChatMessage]:
    turns = [
        m
        for i in range(4)
        for m in (
            ChatMessage(role="user", content=f"question {i}"),
            ChatMessage(role="assistant", content=f"answer {i}"),
        )
    ]
    return [
        SYSTEM,
        ChatMessage(role="user", content="check my booking"),
        *tool_pair("c1", json.dumps(RESERVATION)),
        *turns,
        ChatMessage(role="user", content="and the second flight?"),
    ]


def test_a_dropped_exchange_leaves_its_facts_in_the_note():
    plan = CompressionPlan(keep_last=2, window_stride=1, history_budget_tokens=60)
    out, report = compress(COUNTER, session(), plan)
    assert not any(m.role == "tool" for m in out) and report.dropped_messages >= 2
    note = next(m.text() for m in out if m.text().startswith("[context note:"))
    assert (
        'get_reservation({"id": "x"}): reservation_id: ZFA04Y; '
        "flights: HAT001 JFK 2024-05-01 | HAT002 ORD 2024-05-03; remarks: 12]"
    ) in note
    assert "economy" not in note and "Mia" not in note
    # Off: the note only says what went.
    bare, _ = compress(COUNTER, session(), replace(plan, keep_dropped_facts=False))
    bare_note = next(m.text() for m in bare if m.text().startswith("[context note:"))
    assert "ZFA04Y" not in bare_note


def test_the_budget_pays_for_dropped_facts_first():
    history = units(session()[1:])
    sizes = [100 if u.kind == "tool" else 10 for u in history]
    floor = [90 if u.kind == "tool" else 0 for u in history]
    # Keeping the exchange whole costs only 10 more than its facts: it stays.
    assert all(fill_budget(history, sizes, budget=200, dropped_sizes=floor))
    # Without counting the facts' cost, the same budget keeps the exchange whole too; with a
    # budget the facts alone fill, nothing else fits.
    assert fill_budget(history, sizes, budget=90, dropped_sizes=floor) == [
        u.kind == "correction" for u in history
    ]
