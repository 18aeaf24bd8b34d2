"""What each setting of the quality knob (``TIERFLEET_QUALITY``: the confidence an answer
below the top tier needs) buys on the demo's own workload: the same steps run through the
fleet's stages in one process (``InProcessFleet``: no broker, no budgets) at each point,
priced and judged against the all-frontier baseline. Only for providers that answer
without a network or a model to load (simulated, replay)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from policies.tables import DEFAULT_TIER_TABLE
from policies.tiers import TierTable
from producers.baseline import Baseline
from producers.report import summarize
from producers.workloads import Workload
from queues.records import LedgerEntry
from queues.settings import Settings
from workers.ml.tokenizer import BpeCounter
from workers.providers import build_provider
from workers.testing import InProcessFleet

POINTS = (0.5, 0.6, 0.7, 0.8, 0.9)


@contextmanager
def quiet_logs() -> Iterator[None]:
    """The in-process stages log each step as the workers do: not here, amid the report."""
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        yield
    finally:
        structlog.configure(**before)


OFFLINE = ("simulated", "replay")


def quality_curve(
    workload: Workload, table: TierTable, settings: Settings, baseline: Baseline
) -> list[dict[str, Any]] | None:
    """One point per knob setting: savings and quality beside the baseline's; None when the
    table's providers cannot be run offline."""
    providers = {m.provider for m in table.models.values()}
    if len(providers) != 1 or not providers <= set(OFFLINE):
        return None
    quick = settings.model_copy(update={"simulated_latency_ms": 0.0})
    provider = build_provider(providers.pop(), quick, BpeCounter(settings.tokenizer_encoding))
    points = []
    with quiet_logs():
        for quality in POINTS:
            points.append(curve_point(workload, provider, settings, baseline, quality))
    return points


def curve_point(
    workload: Workload, provider: Any, settings: Settings, baseline: Baseline, quality: float
) -> dict[str, Any]:
    """The workload through the stages in one process at one knob setting."""
    fleet = InProcessFleet(
        provider,
        tier_table=settings.tier_table or DEFAULT_TIER_TABLE,
        replay_data=settings.replay_data,
        quality=quality,
    )
    fleet.run(workload.steps)
    summary = summarize(LedgerEntry.model_validate(e) for e in fleet.stores.ledger)
    seen = summary["quality"]
    return {
        "quality_knob": quality,
        "savings_pct": round(100 * (1 - summary["cost"] / baseline.cost_usd), 1),
        "quality": seen,
        "frontier_quality": baseline.quality,
        "gap_points": round(100 * ((baseline.quality or 0) - (seen or 0)), 1),
    }
