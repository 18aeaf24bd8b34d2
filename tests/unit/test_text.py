"""The policies' shared text helpers: one name each, one behaviour."""

from policies.text import (
    choice_letter,
    final_paragraph,
    last_user_text,
    stable_fraction,
    user_text,
)
from queues.step import ChatMessage


def test_the_choice_letter_of_an_answer():
    assert choice_letter("b) dry palms") == "B"
    assert choice_letter("I think the answer is c.") == "C"
    assert choice_letter("Both could work") is None


def test_what_the_user_said():
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="first"),
        ChatMessage(role="assistant", content="ok"),
        ChatMessage(role="user", content="second"),
    ]
    assert last_user_text(messages) == "second"
    assert user_text(messages) == "first\nsecond"
    assert last_user_text(messages[:1]) == ""


def test_the_final_paragraph_of_a_pasted_document_and_a_question():
    assert final_paragraph("A long document.\n\nMore of it.\n\nWhat is due?\n\n") == "What is due?"
    assert final_paragraph("x" * 3000, limit=10) == "x" * 10
    assert final_paragraph("") == ""


def test_a_stable_fraction_depends_on_the_text_alone():
    values = [stable_fraction(f"step-{i}") for i in range(2000)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert 0.45 < sum(v < 0.5 for v in values) / len(values) < 0.55
    assert stable_fraction("step-1") == stable_fraction("step-1")
