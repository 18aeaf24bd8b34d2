"""A prompt its model cannot hold: a tier above whose model holds it, else compressed to
fit once, else a dead letter; never sent to fail."""

from policies.cascade import DeadLetter, Escalate
from policies.context_fit import Refit, fit_context
from policies.tables import DEFAULT_TIER_TABLE
from policies.tiers import load_tier_table

TABLE = load_tier_table(DEFAULT_TIER_TABLE)
CHEAP, MID, TOP = (TABLE.model_of(t).name for t in TABLE.names)


def limits(cheap, mid, top):
    return {CHEAP: cheap, MID: mid, TOP: top}


def test_the_lowest_tier_above_that_holds_it_takes_it():
    decision = fit_context(TABLE, "cheap", CHEAP, 5000, 500, limits(4000, 3000, 8000), False)
    assert isinstance(decision, Escalate) and decision.tier == "frontier"
    assert "holds 4000 tokens; this call needs 5000" in decision.why


def test_none_holds_it_so_it_is_compressed_once_to_fit_the_largest():
    decision = fit_context(TABLE, "cheap", CHEAP, 9000, 500, limits(4000, 6000, 8000), False)
    assert isinstance(decision, Refit) and decision.fit_tokens == 8000
    again = fit_context(TABLE, "cheap", CHEAP, 8500, 500, limits(4000, 6000, 8000), True)
    assert isinstance(again, DeadLetter) and "even compressed" in again.why


def test_an_unlisted_context_holds_anything():
    decision = fit_context(TABLE, "cheap", CHEAP, 9000, 500, limits(4000, None, 8000), False)
    assert isinstance(decision, Escalate) and decision.tier == "mid"
