"""``tierfleet bench compress-tune``: the history budget chosen where it is never reported.

Each budget on the grid runs on the tuning half of the tau-bench tasks only; the chosen one
is the largest cut of volatile tokens that keeps at least ``floor`` of the used facts there.
The floor sits a point above the 98% the default promises, for the slip to tasks it never
saw; ``bench compress`` (the report half) gives the figure that counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from policies.compression import CompressionPlan, TextCompressor
from producers.bench.compress import bench_tau

BUDGETS = (400, 600, 800, 1000, 1200, 1400, 1800)
FACTS_FLOOR = 0.99
KEPT = ("volatile_token_reduction", "used_facts_kept", "billed_input_reduction", "calls")


def tune_history_budget(
    path: Path,
    plan: CompressionPlan,
    budgets: Sequence[int] = BUDGETS,
    floor: float = FACTS_FLOOR,
    texts: TextCompressor | None = None,
) -> dict[str, Any]:
    curve = []
    for budget in budgets:
        figures = bench_tau(
            path, None, replace(plan, history_budget_tokens=budget), False, texts, split="tune"
        )
        curve.append({"history_budget_tokens": budget, **{k: figures[k] for k in KEPT}})
    held = [row for row in curve if row["used_facts_kept"] >= floor]
    chosen = max(held, key=lambda r: r["volatile_token_reduction"]) if held else None
    return {
        "split": "tune",
        "workload": str(path),
        "facts_floor": floor,
        "keep_dropped_facts": plan.keep_dropped_facts,
        "curve": curve,
        "chosen_history_budget_tokens": chosen["history_budget_tokens"] if chosen else None,
    }
