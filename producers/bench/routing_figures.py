"""The routing benchmark's figures from the fleet's ledger: accuracy and cost beside the
references, per task, the curve, shadow agreement, and the curve drawn."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from producers.fleet import Fleet
from producers.report import summarize_shadow
from queues.records import LedgerEntry, ShadowRecord


def settled_shadow(
    fleet: Fleet, quiet_s: float = 2.0, timeout_s: float = 120.0
) -> list[ShadowRecord]:
    """Shadow records, once no new one has arrived for ``quiet_s`` (they trail the answers)."""
    deadline = time.monotonic() + timeout_s
    count, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = len(fleet.shadow_records())
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
        time.sleep(0.2)
    return fleet.shadow_records()


def shadow_figures(
    records: Sequence[ShadowRecord], ledger: Sequence[LedgerEntry], frontier: str
) -> dict[str, Any]:
    """Shadow agreement beside what the labels say of the same accepted answers: how well
    the production signal tracks the quality it stands in for."""
    by_step = {e.step_id: e for e in ledger}
    sampled = [by_step[r.step_id] for r in records if r.step_id in by_step]
    summary = summarize_shadow(records)
    summary["labelled_accuracy_of_sampled"] = (
        round(sum(bool(e.correct) for e in sampled) / len(sampled), 4) if sampled else None
    )
    summary["shadow_model"] = frontier
    return summary


def _mix(ledger: Sequence[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for e in ledger:
        out[str(e["model"])] += 1
    return dict(out)


def plot_curve(figures: dict[str, Any], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the install
        return "not drawn: matplotlib is not installed (pip install 'tierfleet[train]')"
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [100 * p["cost_ratio_vs_frontier"] for p in figures["curve"]]
    ys = [100 * p["accuracy"] for p in figures["curve"]]
    ax.plot(xs, ys, "o-", label="learned router (target knob), the table's acceptance")
    ax.scatter([100], [100 * figures["frontier_accuracy"]], marker="s", label="frontier only")
    oracle_x = 100 * figures["oracle_cost_per_query"] / figures["frontier_cost_per_query"]
    ax.scatter([oracle_x], [100 * figures["oracle_accuracy"]], marker="*", label="oracle")
    ax.scatter(
        [100 * figures["cost_ratio_vs_frontier"]],
        [100 * figures["accuracy"]],
        marker="x",
        s=80,
        label=f"fleet: {figures['router']}",
    )
    ax.set_xlabel("cost, % of frontier only")
    ax.set_ylabel("accuracy, %")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
