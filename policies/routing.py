"""The rule router: task kind, prompt length and schema pick the starting tier."""

from __future__ import annotations

from dataclasses import dataclass

from policies.tiers import TierTable


@dataclass(frozen=True)
class Route:
    tier: str
    why: str


def route_by_rules(
    table: TierTable, *, task_kind: str, prompt_tokens: int, has_schema: bool
) -> Route:
    rules = table.routing
    tier = rules.task_kind.get(task_kind, rules.default_tier)
    why = [f"task_kind={task_kind} -> {tier}"]
    if prompt_tokens > rules.long_prompt_tokens:
        bumped = table.next_tier(tier)
        if bumped:
            why.append(f"prompt {prompt_tokens} tok > {rules.long_prompt_tokens} -> {bumped}")
            tier = bumped
    if has_schema:
        floor = table.at_least(tier, rules.schema_min_tier)
        if floor != tier:
            why.append(f"schema requires >= {rules.schema_min_tier}")
            tier = floor
    return Route(tier, "; ".join(why))
