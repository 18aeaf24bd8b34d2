"""How the CPU engine lays out a micro-batch over a shared prompt prefix (pure)."""

from workers.engines.prefix_cache import common_length, layout, length_groups, shared_prefix


def test_the_shared_prefix_leaves_every_row_a_token_of_its_own():
    assert shared_prefix([[1, 2, 3, 4], [1, 2, 3, 5, 6]]) == 3
    assert shared_prefix([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shorter row keeps its last
    assert shared_prefix([[1, 2, 3]]) == 2
    assert shared_prefix([[7], [7]]) == 0
    assert shared_prefix([[1, 2], [3, 4]]) == 0


def test_rows_sit_on_the_prefix_with_their_padding_between():
    ids, mask = layout([[1, 2, 3], [1, 2, 4, 5, 6]], prefix=2, pad=0)
    assert ids == [[1, 2, 0, 0, 3], [1, 2, 4, 5, 6]]
    assert mask == [[1, 1, 0, 0, 1], [1, 1, 1, 1, 1]]


def test_without_a_prefix_it_is_plain_left_padding():
    ids, mask = layout([[5], [6, 7, 8]], prefix=0, pad=9)
    assert ids == [[9, 9, 5], [6, 7, 8]]
    assert mask == [[0, 0, 1], [1, 1, 1]]


def test_common_length():
    assert common_length((1, 2, 3), (1, 2, 4)) == 2
    assert common_length((), (1,)) == 0


def test_rows_of_very_different_lengths_go_in_different_groups():
    shared = list(range(100))
    short = [shared + [1] * 10 for _ in range(3)]
    long = [shared + [2] * 400]
    groups = length_groups([*short, *long])
    assert groups == [[0, 1, 2], [3]]  # the short ones are not padded to 400 tokens
    similar = [shared + [1] * n for n in (50, 60, 70, 80)]
    assert length_groups(similar) == [[0, 1, 2, 3]]
    assert length_groups([]) == []
