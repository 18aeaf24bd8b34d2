"""Self-reported confidence: asked for on a last line, read off the answer."""

import pytest

from policies.self_report import NOTE, ask_for_confidence, read_confidence
from queues.step import ChatMessage


@pytest.mark.parametrize(
    ("text", "answer", "confidence"),
    [
        ("Rebook on the 14:05.\nConfidence: 0.82", "Rebook on the 14:05.", 0.82),
        ("Yes.\n  confidence:  90%", "Yes.", 0.9),
        ("Yes. Confidence: .4", "Yes.", 0.4),
        ("No line at all.", "No line at all.", None),
        ("Odd.\nConfidence: 7", "Odd.", None),
    ],
)
def test_the_confidence_line_is_read_and_taken_off(text, answer, confidence):
    assert read_confidence(text) == (answer, confidence)


def test_the_note_goes_last_and_the_prefix_stays():
    request = (ChatMessage(role="system", content="Policy."), ChatMessage(role="user", content="Q"))
    asked = ask_for_confidence(request)
    assert asked[:2] == request and asked[-1].content == NOTE
