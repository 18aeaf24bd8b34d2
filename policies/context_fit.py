"""A prompt its model cannot hold is never sent to fail. First choice: the lowest tier at
or above the step's whose model holds it (the answer keeps its quality). Else, once, the
prompt is compressed harder, to fit the largest model the step may reach. A prompt that
still does not fit is dead-lettered with the reason, unsent."""

from __future__ import annotations

from dataclasses import dataclass

from policies.cascade import DeadLetter, Decision, Escalate
from policies.tiers import TierTable


@dataclass(frozen=True)
class Refit:
    """Back to the compress stage: make the prompt and its answer fit ``fit_tokens``."""

    fit_tokens: int
    why: str


def holds(limit: int | None, needed: int) -> bool:
    return not limit or needed <= limit


def fit_context(
    table: TierTable,
    tier: str,
    model: str,
    needed: int,
    output_tokens: int,
    limits: dict[str, int | None],
    refitted: bool,
) -> Decision | Refit:
    """``limits``: each model's context (None or 0: unknown, taken as holding anything);
    ``needed``: the prompt and its answer, in tokens."""
    why = f"{model} holds {limits.get(model)} tokens; this call needs {needed}"
    names = list(table.names)
    above = names[names.index(tier) + 1 :]
    for upper in above:
        if holds(limits.get(table.model_of(upper).name), needed):
            return Escalate(upper, f"{why} -> {upper}, whose model holds it")
    if not refitted:
        reachable = [limits.get(table.model_of(t).name) for t in [tier, *above]]
        largest = max((lim for lim in reachable if lim), default=0)
        if largest > output_tokens:
            return Refit(largest, f"{why}; no tier above holds it: compressed to fit {largest}")
    return DeadLetter(f"{why}, and no model the step may reach holds it even compressed")
