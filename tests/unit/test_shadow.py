import pytest

from policies.shadow import agree, shadowed


@pytest.mark.parametrize(
    ("a", "b", "kind", "same"),
    [
        ("B", "The answer is B.", "multiple_choice", True),
        ("A) dry palms", "B", "multiple_choice", False),
        ('{"n": 1, "c": "a"}', '{"c": "a", "n": 1}', "extract", True),
        ('{"n": 1}', '{"n": 2}', "extract", False),
        ("The flight leaves at nine", "the flight leaves at nine.", "chat", True),
        ("Refund approved", "Refund denied, fare rules", "chat", False),
    ],
)
def test_agreement_by_task_kind(a, b, kind, same):
    assert agree(a, b, kind) is same


def test_the_shadowed_share_is_stable_and_close_to_the_fraction():
    ids = [f"step-{i}" for i in range(4000)]
    share = sum(shadowed(i, 0.1) for i in ids) / len(ids)
    assert 0.085 < share < 0.115
    assert [shadowed(i, 0.1) for i in ids[:50]] == [shadowed(i, 0.1) for i in ids[:50]]
    assert not any(shadowed(i, 0.0) for i in ids)
