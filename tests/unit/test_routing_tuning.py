"""The routing benchmark's table variants and its tuning split: the prompts it reports on
never take part in choosing the shipped acceptance."""

from policies.text import stable_fraction
from policies.tiers import parse_tier_table
from producers.bench.routing import ROUTERBENCH_TABLE
from producers.bench.routing_replay import split_by_prompt, table_variant
from producers.bench.routing_tuning import tuning_split, variant
from workers.providers.replay import Recorded, ReplayRow


def rows(n: int) -> list[ReplayRow]:
    return [
        ReplayRow(str(i), f"prompt number {i}", "arc", {"m": Recorded("A", True, 0.1)})
        for i in range(n)
    ]


def test_the_tuning_split_takes_only_training_prompts_and_keeps_its_parts_apart():
    train, test = split_by_prompt(rows(2000), 0.3)
    fit, tune = tuning_split(train, 0.3)
    assert not {r.prompt for r in tune} & {r.prompt for r in test}
    assert not {r.prompt for r in fit} & {r.prompt for r in tune}
    assert len(fit) + len(tune) == len(train)
    assert all(0.3 <= stable_fraction(r.prompt) < 0.51 for r in tune)
    assert 0.2 < len(tune) / len(train) < 0.4


def test_a_table_variant_turns_agreement_off_or_to_another_model():
    off = parse_tier_table(table_variant(ROUTERBENCH_TABLE, "none"))
    assert off.tier("cheap").acceptance == "checks" and off.escalation_of("cheap") == "mid"
    other = parse_tier_table(table_variant(ROUTERBENCH_TABLE, "meta/llama-2-70b-chat", 0.6))
    assert other.tier("cheap").cross_check == "meta/llama-2-70b-chat"
    assert other.tier("cheap").accept_min_confidence == 0.6
    assert other.tier("frontier").accept_min_confidence == 0.0
    shipped = parse_tier_table(table_variant(ROUTERBENCH_TABLE, None))
    assert shipped.tier("cheap").cross_check == "zero-one-ai/Yi-34B-Chat"


def test_a_candidate_puts_its_first_model_at_the_head_of_the_cheap_tier():
    table = variant(ROUTERBENCH_TABLE, "zero-one-ai/Yi-34B-Chat", "meta/llama-2-70b-chat", False)
    assert table.tier("cheap").model == "zero-one-ai/Yi-34B-Chat"
    assert table.escalation_of("cheap") == "mid"
    skipping = variant(ROUTERBENCH_TABLE, "meta/llama-2-70b-chat", "zero-one-ai/Yi-34B-Chat", True)
    assert skipping.escalation_of("cheap") == "frontier"
