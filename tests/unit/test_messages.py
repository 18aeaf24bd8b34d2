import pytest

from producers.fleet import InvalidStep, to_step
from queues.messages import Envelope
from queues.step import AgentStep, Lane, prompt_version_of
from workers.testing import step

BASE = {
    "tenant": "acme",
    "agent": "a",
    "session_id": "s",
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tenant": ""}, "tenant"),
        ({"tenant": "has space"}, "tenant"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0"),
        ({"messages": [{"role": "user"}]}, "messages.0"),
        ({"lane": "urgent"}, "lane"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"response_schema": {"type": "nonsense"}}, "response_schema"),
        ({"task_kind": "Has Caps"}, "task_kind"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_submit_rejects_invalid_steps_naming_the_field(change, field):
    with pytest.raises(InvalidStep) as err:
        to_step({**BASE, **change})
    assert f"field '{field}" in str(err.value)


def test_step_missing_required_field_is_named():
    with pytest.raises(InvalidStep, match="field 'session_id'"):
        to_step({k: v for k, v in BASE.items() if k != "session_id"})


def test_step_is_frozen_and_round_trips_as_json():
    s = step(lane="interactive", response_schema={"type": "object"})
    with pytest.raises(ValueError):
        s.tenant = "other"  # type: ignore[misc]
    again = AgentStep.model_validate_json(s.model_dump_json())
    assert again == s and again.lane is Lane.interactive


def test_prompt_version_hashes_system_prompt_and_tools_only():
    a = step()
    b = step(messages=[a.messages[0], {"role": "user", "content": "another question"}])
    c = step(messages=[{"role": "system", "content": "different"}, a.messages[1]])
    assert a.prompt_version == b.prompt_version != c.prompt_version
    assert a.prompt_version == prompt_version_of(a.messages, ())
    assert step(tools=[{"type": "function"}]).prompt_version != a.prompt_version


def test_tool_calls_and_results_in_openai_format():
    s = step(
        messages=[
            {"role": "user", "content": "look up ABC123"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "function": {"name": "lookup", "arguments": '{"id": "ABC123"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"status": "ok"}'},
        ]
    )
    assert s.messages[1].text() == 'lookup({"id": "ABC123"})'


def test_envelope_only_grows():
    env = Envelope(step=step())
    later = env.decide("cache", "miss", "no entry", cache_key="tf:xc:k")
    assert env.decisions == () and env.cache_key is None
    assert [d.stage for d in later.decisions] == ["cache"] and later.cache_key == "tf:xc:k"
    assert Envelope.from_wire(later.to_wire()) == later
