import itertools
import json

import pytest

from policies.compression import CompressionPlan, compress, trim_text, window_start
from policies.tokens import prompt_tokens
from queues.messages import ChatMessage
from workers.tokenizer import BpeCounter

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
    out, report = compress(COUNTER, history, CompressionPlan(keep_last=4))
    assert out[0].model_dump_json() == SYSTEM.model_dump_json()
    assert out[0] is SYSTEM
    assert report.dropped_messages == len(history) - 1 - 1 - 4
    assert out[1].content == "question 0"  # the opening user message states the task
    assert [m.content for m in out[-4:]] == ["answer 18", "question 19", "answer 19", "now"]


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


def test_long_tool_result_keeps_head_and_tail_and_says_what_was_cut():
    records = [{"flight": f"HAT{i:03d}", "price": i} for i in range(400)]
    payload = json.dumps(records)
    history = [
        SYSTEM,
        ChatMessage(role="user", content="change my flight"),
        *tool_pair("c1", payload),
        ChatMessage(role="user", content="ok?"),
    ]
    out, report = compress(COUNTER, history, CompressionPlan(tool_result_max_tokens=200))
    trimmed = out[3].content
    assert isinstance(trimmed, str)
    assert trimmed.startswith(payload[:50]) and trimmed.endswith(payload[-30:])
    assert "tokens of tool output cut" in trimmed
    assert report.trimmed_results == 1
    assert COUNTER.count_many([trimmed])[0] <= 200 + 20
    assert prompt_tokens(COUNTER, out) < prompt_tokens(COUNTER, history)


def test_trim_text_leaves_short_text_alone():
    assert trim_text(COUNTER, "short", 100, 0.67) == ("short", 0)


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
    assert max(len(p) for p in prompts) <= 2 + 4 + 3  # prefix, opening, keep_last + stride - 1
    rolling = CompressionPlan(keep_last=4, window_stride=1)
    rolled = [compress(counter, history[: 4 + 2 * t], rolling)[0] for t in range(3, 12)]
    assert not any(new[: len(old)] == old for old, new in itertools.pairwise(rolled))
