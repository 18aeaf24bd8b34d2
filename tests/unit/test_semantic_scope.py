"""Which steps the semantic cache may answer, and the scope it searches."""

from policies.semantic_cache import (
    conversation_state,
    question_of,
    scope_of,
    skip_reason,
    tier_floor,
)
from policies.tables import DEFAULT_TIER_TABLE
from policies.tiers import load_tier_table
from workers.testing import step

TABLE = load_tier_table(DEFAULT_TIER_TABLE)
SYSTEM = {"role": "system", "content": "You are a careful assistant."}
CALL = {
    "role": "assistant",
    "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": "{}"}}],
}
RESULT = {"role": "tool", "tool_call_id": "c1", "content": "flight UA1 is delayed"}


def ask(text: str, *, before: list[dict] | None = None, **fields) -> object:
    messages = [SYSTEM, *(before or []), {"role": "user", "content": text}]
    return step(messages=messages, **fields)


def test_the_question_is_the_last_user_turn_normalised():
    s = ask(
        "  What is the   baggage allowance? ",
        before=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    )
    assert question_of(s) == "What is the baggage allowance?"


def test_scope_separates_tenants_agents_prompt_versions_and_embedders():
    base = scope_of(TABLE, ask("Q?"), "m@1")
    assert scope_of(TABLE, ask("Another wording?"), "m@1").key == base.key
    assert scope_of(TABLE, ask("Q?", tenant="other"), "m@1").key != base.key
    assert scope_of(TABLE, ask("Q?", agent="billing"), "m@1").key != base.key
    assert scope_of(TABLE, ask("Q?", prompt_version="pv-2"), "m@1").key != base.key
    assert scope_of(TABLE, ask("Q?"), "m@2").key != base.key
    other_system = step(
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Q?"}]
    )
    assert scope_of(TABLE, other_system, "m@1").key != base.key  # its own prompt version


def test_the_conversation_before_the_last_user_turn_is_part_of_the_scope():
    first = ask(
        "And the fee?",
        before=[
            {"role": "user", "content": "Flight to Paris"},
            {"role": "assistant", "content": "Booked."},
        ],
    )
    other = ask(
        "And the fee?",
        before=[
            {"role": "user", "content": "Flight to Rome"},
            {"role": "assistant", "content": "Booked."},
        ],
    )
    fresh = ask("And the fee?")
    assert conversation_state(first) != conversation_state(other)
    assert conversation_state(first) != conversation_state(fresh)
    same_history = ask(
        "What is the fee?",
        before=[
            {"role": "user", "content": "Flight to Paris"},
            {"role": "assistant", "content": "Booked."},
        ],
    )
    assert conversation_state(first) == conversation_state(same_history)


def test_a_turn_with_new_tool_results_is_never_answered_semantically():
    with_result = step(
        messages=[SYSTEM, {"role": "user", "content": "Is UA1 on time?"}, CALL, RESULT]
    )
    assert skip_reason(with_result, []) == "the turn carries new tool results"
    # Tool results from before the last user turn are history (in the state hash), not new.
    later = ask(
        "Thanks, and the gate?",
        before=[
            {"role": "user", "content": "Is UA1 on time?"},
            CALL,
            RESULT,
            {"role": "assistant", "content": "Delayed."},
        ],
    )
    assert skip_reason(later, []) is None


def test_non_cacheable_kinds_and_empty_turns_are_skipped():
    assert "not semantically cacheable" in skip_reason(
        ask("Q?", task_kind="tool_call"), ["tool_call"]
    )
    assert skip_reason(ask("Q?", task_kind="chat"), ["tool_call"]) is None
    assert skip_reason(ask("   "), []) == "the user turn has no text"


def test_the_tier_floor_follows_the_rules():
    cheap = TABLE.tier("cheap").rank
    assert tier_floor(TABLE, ask("Q?", task_kind="chat")) == cheap
    assert tier_floor(TABLE, ask("Q?", task_kind="reason")) == TABLE.tier("frontier").rank
    with_schema = ask("Q?", response_schema={"type": "object"})
    assert tier_floor(TABLE, with_schema) >= cheap
    assert scope_of(TABLE, ask("Q?", task_kind="code"), "m@1").tier_floor == TABLE.tier("mid").rank
