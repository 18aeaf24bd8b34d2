import random

import pytest

from policies.budgets import BudgetState
from policies.caching import exact_key
from policies.retry import backoff_s
from queues import keys
from workers.testing import step

Q = [{"role": "system", "content": "sys"}, {"role": "user", "content": "What  is\n the fee?"}]


def test_exact_key_normalizes_whitespace():
    assert exact_key(step(messages=Q)) == exact_key(
        step(messages=[Q[0], {"role": "user", "content": "What is the fee?"}])
    )


@pytest.mark.parametrize(
    "change",
    [
        {"tenant": "globex"},
        {"agent": "other"},
        {"prompt_version": "pv-explicit"},
        {"messages": [{"role": "system", "content": "other system"}, Q[1]]},
        {"response_schema": {"type": "object"}},
        {"task_kind": "extract"},
        {"messages": [*Q, {"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]},
        {"max_output_tokens": 64},
    ],
)
def test_exact_key_is_scoped(change):
    assert exact_key(step(messages=Q)) != exact_key(step(**{"messages": Q, **change}))


def _with_image(url: str) -> list[dict]:
    question = {"type": "text", "text": "What is in this picture?"}
    return [
        Q[0],
        {"role": "user", "content": [question, {"type": "image_url", "image_url": {"url": url}}]},
    ]


def test_exact_key_covers_images_and_economy_mode():
    cat, dog = (
        step(messages=_with_image("https://x/cat.png")),
        step(messages=_with_image("https://x/dog.png")),
    )
    assert exact_key(cat) != exact_key(dog)  # the same text, another image
    assert exact_key(cat) == exact_key(step(messages=_with_image("https://x/cat.png")))
    assert exact_key(cat) != exact_key(cat, economy=True)  # an economy answer is its own entry


def test_exact_key_ignores_ids_and_eval_labels():
    a = step(messages=Q, step_id="a1", session_id="s1", labels={"difficulty": 0.1})
    b = step(messages=Q, step_id="b2", session_id="s2", labels={"difficulty": 0.9})
    assert exact_key(a) == exact_key(b)


@pytest.mark.parametrize(
    ("limit", "spent", "reserved", "amount", "admits"),
    [
        (None, 10**12, 10**12, 10**12, True),
        (100, 0, 0, 100, True),
        (100, 50, 40, 10, True),
        (100, 50, 40, 11, False),
        (100, 100, 0, 1, False),
    ],
)
def test_budget_admission(limit, spent, reserved, amount, admits):
    assert BudgetState(limit, spent, reserved).admits(amount) is admits


def test_reservation_ids_differ_per_attempt_and_retry():
    assert len({keys.reservation("t", "s", a, r) for a in range(3) for r in range(3)}) == 9


@pytest.mark.parametrize("retries", [0, 1, 2, 5, 20])
def test_backoff_grows_with_full_jitter_and_a_cap(retries):
    rng = random.Random(retries)
    ceiling = min(60.0, 0.5 * 2**retries)
    for _ in range(50):
        assert ceiling / 2 <= backoff_s(0.5, retries, rng=rng) <= ceiling
