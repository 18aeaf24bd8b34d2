import itertools
import json

import pytest

from policies.compression import CompressionPlan, compress, window_start
from queues.step import ChatMessage
from workers.ml.tokenizer import BpeCounter

COUNTER = BpeCounter()
SYSTEM = ChatMessage(role="system", content="Policy:\n" + "Rule about refunds. " * 200)


def turn(i: int) -> list[ChatMessage]:
    return [
        ChatMessage(role="user", content=f"question {i}"),
        ChatMessage(role="assistant", content=f"answer {i}"),
    ]


def tool_pair(call_id: str, payload: str) -> list[ChatMessage]:
    return [
        ChatMessage.model_validate(
            {
                "role": "assistant",
                "tool_calls": [{"id": call_id, "function": {"name": "lookup", "arguments": "{}"}}],
            }
        ),
        ChatMessage(role="tool", tool_call_id=call_id, content=payload),
    ]


def test_static_prefix_is_kept_byte_for_byte():
    history = [
        SYSTEM,
        *[m for i in range(20) for m in turn(i)],
        ChatMessage(role="user", content="now"),
    ]
    out, report = compress(COUNTER, history, CompressionPlan(keep_last=4, window_stride=1))
    assert out[0].model_dump_json() == SYSTEM.model_dump_json()
    assert out[0] is SYSTEM
    assert out[1].content == "question 0"  # the opening user message states the task
    assert [m.content for m in out[-4:]] == ["answer 18", "question 19", "answer 19", "now"]
    # Older assistant replies go (their facts live in the results and user turns kept).
    old = out[2:-4]
    assert [m.content for m in old] == [f"question {i}" for i in range(1, 19)]
    assert report.dropped_messages == 18


def test_nothing_to_do_changes_nothing():
    history = [SYSTEM, *turn(0), ChatMessage(role="user", content="next")]
    out, report = compress(COUNTER, history, CompressionPlan(keep_last=8))
    assert list(out) == history and not report.changed


@pytest.mark.parametrize(
    ("body_len", "keep", "roles", "expected"),
    [
        (10, 4, ["user"] * 10, 6),
        (10, 20, ["user"] * 10, 0),
        (6, 2, ["user", "assistant", "assistant", "tool", "tool", "user"], 2),
        (5, 2, ["user", "assistant", "assistant", "tool", "tool"], 2),
    ],
)
def test_window_never_starts_on_a_tool_result(body_len, keep, roles, expected):
    body = [
        ChatMessage(role=r, content="x", tool_call_id="c" if r == "tool" else None) for r in roles
    ]
    start = window_start(body, keep)
    assert start == expected
    assert start == 0 or body[start].role != "tool"


def test_a_strided_window_makes_each_call_extend_the_last_until_it_steps():
    counter = BpeCounter()
    plan = CompressionPlan(keep_last=4, window_stride=4)
    history = [SYSTEM, ChatMessage(role="user", content="task")]
    prompts = []
    for turn in range(12):
        history.append(ChatMessage(role="assistant", content=f"answer {turn}"))
        history.append(ChatMessage(role="user", content=f"question {turn}"))
        prompts.append(compress(counter, history, plan)[0])
    extends = [new[: len(old)] == old for old, new in itertools.pairwise(prompts)]
    # Two messages a turn, a stride of four: the window steps every other call, and the call
    # in between reuses the whole previous prompt as its prefix.
    assert extends == [True, True] + [False, True] * 4 + [False]
    # Before the window only user turns stay; the window holds keep_last + stride - 1 at most.
    assert max(sum(m.role == "assistant" for m in p) for p in prompts) <= 4
    rolling = CompressionPlan(keep_last=4, window_stride=1)
    rolled = [compress(counter, history[: 4 + 2 * t], rolling)[0] for t in range(3, 12)]
    assert not any(new[: len(old)] == old for old, new in itertools.pairwise(rolled))


FLIGHTS = [
    {
        "flight_number": f"HAT{i:03d}",
        "origin": "JFK",
        "destination": "SEA",
        "status": "available",
        "prices": {"economy": 100 + i, "business": 400 + i},
    }
    for i in range(60)
]


def test_json_tool_output_becomes_a_table_with_every_value():
    history = [
        SYSTEM,
        ChatMessage(role="user", content="flights to Seattle?"),
        *tool_pair("c1", json.dumps(FLIGHTS[:3])),
        ChatMessage(role="user", content="ok"),
    ]
    out, report = compress(COUNTER, history, CompressionPlan())
    table = out[3].content
    assert table == (
        "flight_number|origin|destination|status|prices.economy|prices.business\n"
        "HAT000|JFK|SEA|available|100|400\n"
        "HAT001|JFK|SEA|available|101|401\n"
        "HAT002|JFK|SEA|available|102|402"
    )
    assert report.compacted_results == 1 and report.tokens_after < report.tokens_before


def test_long_tool_output_keeps_the_records_the_request_names_and_lists_the_rest():
    history = [
        SYSTEM,
        ChatMessage(role="user", content="Is HAT042 still available?"),
        *tool_pair("c1", json.dumps(FLIGHTS)),
    ]
    out, report = compress(COUNTER, history, CompressionPlan(tool_result_max_tokens=150))
    text = out[3].content
    assert isinstance(text, str) and report.trimmed_results == 1
    assert "HAT042|JFK|SEA|available|142|442" in text  # the record the request names
    assert text.startswith("flight_number|origin")  # the header stays
    assert "records omitted as not matching the request" in text
    assert "HAT030" in text  # an omitted record is still named by its identifier
    assert "HAT030|JFK" not in text
    assert COUNTER.count_many([text])[0] <= 150 + 250  # the budget plus the note of ids


def test_old_history_drops_replies_keeps_calls_and_corrections_and_says_what_went():
    history = [
        SYSTEM,
        ChatMessage(role="user", content="book me a flight"),
        *tool_pair("c1", json.dumps({"user_id": "mia_1", "membership": "gold"})),
        ChatMessage(role="assistant", content="You are a gold member. " * 20),
        ChatMessage(role="user", content="Actually, I meant my husband's account."),
        *[m for i in range(6) for m in turn(i)],
    ]
    out, report = compress(
        COUNTER, history, CompressionPlan(keep_last=2, window_stride=1, history_budget_tokens=20)
    )
    texts = [m.text() for m in out]
    assert not any("gold member" in t for t in texts)
    assert "Actually, I meant my husband's account." in texts  # a correction is never dropped
    assert any(t.startswith("[context note:") and "omitted" in t for t in texts)
    kept_calls = [m for m in out if m.tool_calls]
    kept_results = [m for m in out if m.role == "tool"]
    # A call and its result stay or go together.
    assert len(kept_calls) == len(kept_results)
    assert report.dropped_messages > 0


def test_a_later_result_about_the_same_entity_keeps_only_what_changed():
    before = json.dumps(
        {
            "reservation_id": "ABC123",
            "cabin": "economy",
            "flights": [{"flight_number": "HAT001", "price": 120}],
            "insurance": "yes",
        }
    )
    after = json.dumps(
        {
            "reservation_id": "ABC123",
            "cabin": "business",
            "flights": [{"flight_number": "HAT002", "price": 480}],
        }
    )
    history = [
        SYSTEM,
        ChatMessage(role="user", content="upgrade ABC123"),
        *tool_pair("c1", before),
        *tool_pair("c2", after),
        *tool_pair("c3", after),
        *[m for i in range(4) for m in turn(i)],
    ]
    out, _ = compress(COUNTER, history, CompressionPlan(keep_last=2, window_stride=1))
    results = [m.content for m in out if m.role == "tool"]
    assert results == [
        "reservation_id: ABC123\ncabin: economy\nflights:\nflight_number|price\nHAT001|120\n"
        "insurance: yes",
        "[reservation_id: ABC123: as above, except]\ncabin: business\nflights:\n"
        "flight_number|price\nHAT002|480\nno longer: HAT001|120\nno longer: insurance: yes",
        "[the same result as above]",
    ]
    # Told from the results before it alone: the same text in a longer session.
    longer, _ = compress(
        COUNTER, [*history, *turn(9)], CompressionPlan(keep_last=2, window_stride=1)
    )
    assert [m.content for m in longer if m.role == "tool"] == results


def test_a_result_told_against_one_the_budget_dropped_is_shown_whole():
    first = json.dumps({"reservation_id": "ABC123", "cabin": "economy", "note": "x " * 300})
    second = json.dumps({"reservation_id": "ABC123", "cabin": "business", "note": "x " * 300})
    history = [
        SYSTEM,
        ChatMessage(role="user", content="upgrade ABC123"),
        *tool_pair("c1", first),
        ChatMessage(role="user", content="go on"),
        *tool_pair("c2", second),
        *[m for i in range(3) for m in turn(i)],
    ]
    plan = CompressionPlan(keep_last=2, window_stride=1, history_budget_tokens=200)
    out, _ = compress(COUNTER, history, plan)
    results = [m.text() for m in out if m.role == "tool"]
    assert len(results) == 1 and results[0].startswith("reservation_id: ABC123\ncabin: business")


def test_old_calls_to_reasoning_tools_go_with_the_old_replies():
    history = [
        SYSTEM,
        ChatMessage(role="user", content="book"),
        ChatMessage.model_validate(
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "t1", "function": {"name": "think", "arguments": '{"thought":"hm"}'}}
                ],
            }
        ),
        ChatMessage(role="tool", tool_call_id="t1", content=""),
        *[m for i in range(4) for m in turn(i)],
    ]
    out, _ = compress(COUNTER, history, CompressionPlan(keep_last=2, window_stride=1))
    assert not any(m.tool_calls or m.role == "tool" for m in out)
    kept, _ = compress(
        COUNTER,
        history,
        CompressionPlan(keep_last=2, window_stride=1, reasoning_tools=frozenset()),
    )
    assert [m.role for m in kept if m.tool_calls or m.role == "tool"] == ["assistant", "tool"]


def test_long_free_text_goes_to_the_prompt_compressor_with_the_question():
    document = " ".join(f"Paragraph {i} talks about topic {i}." for i in range(400))
    question = "What does paragraph 77 say?"
    history = [ChatMessage(role="user", content=f"{document}\n\n{question}")]
    calls = []

    def compressor(text: str, query: str, budget: int) -> str:
        calls.append((query, budget))
        return text[:100]

    plan = CompressionPlan(text_max_tokens=500, text_ratio=0.25)
    out, report = compress(COUNTER, history, plan, compressor)
    assert calls and calls[0][0] == question
    assert report.compressed_texts == 1 and len(out[0].text()) == 100
    # The default compressor keeps the sentence that answers, within the budget.
    out, _ = compress(COUNTER, history, plan)
    text = out[0].text()
    assert "Paragraph 77 talks about topic 77." in text and "[...]" in text
    assert COUNTER.count_many([text])[0] <= COUNTER.count_many([history[0].text()])[0] * 0.3


def test_economy_plan_is_tighter():
    plan = CompressionPlan(keep_last=8, tool_result_max_tokens=600, text_ratio=0.5)
    eco = plan.economy(history_budget=1000, factor=0.5)
    assert (eco.keep_last, eco.tool_result_max_tokens, eco.history_budget_tokens) == (4, 300, 1000)
    assert eco.text_ratio == 0.25


def test_the_prompt_compressor_covers_new_ground_and_keeps_to_its_budget():
    from policies.text_select import select_sentences

    repeats = [f"The overlap study counted {n} overlaps in meeting one." for n in range(300, 310)]
    filler = [f"Aside{i}a then aside{i}b." for i in range(60)]
    other = "The overlap marks will be derived by hand from the transcripts."
    text = " ".join([*repeats[:5], *filler[:30], other, *filler[30:], *repeats[5:]])
    budget = 60
    out = select_sentences(text, "What was said on speech overlap?", budget, COUNTER.count_many)
    assert other in out  # new ground beats a sixth way of saying the same thing
    assert COUNTER.count_many([out])[0] <= budget
    assert out.count("[...]") >= 2


def test_a_table_whose_columns_changed_is_shown_whole():
    from policies.structured import changes, render_lines

    before = render_lines(json.dumps({"id": "R1", "flights": [{"n": "HAT1", "p": 1}]}))
    after = render_lines(json.dumps({"id": "R1", "flights": [{"p": 1, "n": "HAT1"}]}))
    assert changes(before, after) == ["flights:", "p|n", "1|HAT1"]
    assert changes(before, before) == []


def test_the_history_budget_goes_to_worth_per_token():
    from policies.history import fill_budget, units

    bulky = tool_pair("c1", "x " * 400)
    history = units(
        [
            *bulky,
            *[ChatMessage(role="user", content=f"short turn {i}") for i in range(5)],
        ]
    )
    sizes = [sum(COUNTER.count_many([m.text() for m in u.messages])) for u in history]
    keep = fill_budget(history, sizes, budget=300)
    # The bulky result is newer than nothing and bigger than all the short turns together.
    assert keep == [False, True, True, True, True, True]


def long_session() -> list[ChatMessage]:
    """Three bulky lookups, then enough turns to push them out of the window."""
    return [
        SYSTEM,
        ChatMessage(role="user", content="check my bookings"),
        *tool_pair("c1", json.dumps({"reservation_id": "AAA111", "note": "seat 12A " * 60})),
        *tool_pair("c2", json.dumps({"reservation_id": "BBB222", "note": "seat 14C " * 60})),
        *[m for i in range(3) for m in turn(i)],
        ChatMessage(role="user", content="and now?"),
    ]


def test_dropped_exchanges_are_told_in_short_once_summarized():
    from policies.history import unit_key, units

    plan = CompressionPlan(
        keep_last=2, window_stride=1, history_budget_tokens=60, summarize_dropped=True
    )
    history = long_session()
    out, report = compress(COUNTER, history, plan)
    assert report.dropped_messages >= 4 and report.summarized == 0
    assert [u.messages[1].tool_call_id for u in report.to_summarize] == ["c1", "c2"]
    # The cheap tier's answer arrives; the next call tells the dropped exchanges in short.
    known = {unit_key(u): f"reservation {i} summarized" for i, u in enumerate(report.to_summarize)}
    out, report = compress(COUNTER, history, plan, summaries=known)
    note = next(m.text() for m in out if m.text().startswith("[context note:"))
    assert "in short:\n- reservation 0 summarized\n- reservation 1 summarized]" in note
    assert report.summarized == 2 and report.to_summarize == ()
    # The key names the exchange as the compressor sent it: the same in every later call.
    later, _ = compress(COUNTER, [*history, *turn(7)[1:], *turn(8)[:1]], plan, summaries=known)
    assert any("reservation 1 summarized" in m.text() for m in later)
    # Off by default: nothing asked for, summaries ignored.
    plain = CompressionPlan(keep_last=2, window_stride=1, history_budget_tokens=60)
    out, report = compress(COUNTER, history, plain, summaries=known)
    assert report.to_summarize == () and not any("in short" in m.text() for m in out)
    assert len({unit_key(u) for u in units(history[1:])}) == len(units(history[1:]))
