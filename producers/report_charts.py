"""The report's charts, drawn with matplotlib as inline SVG (no script, no network: the page
opens anywhere, and prints). Each function takes the report's figures and returns one
``<svg>`` element, or "" when there is nothing to draw."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Text stays text in the SVG (small, searchable); no frame on top and right.
STYLE: dict[Any, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,  # "$0.25 of $0.37" is money, not mathematics
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}

LEVER_NAMES = {
    "exact_cache": "exact cache",
    "semantic_cache": "semantic cache",
    "compression": "compression",
    "routing": "routing",
    "prefix_cache": "prefix caching",
    "batch_lane": "batch lane",
}


def figure(width: float, height: float, columns: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure of its own (matplotlib's object API: no pyplot state, no display)."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width, height))
        axes = fig.subplots(1, columns, squeeze=False)[0]
    return fig, list(axes)


def svg(fig: Figure) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def cost_over_time(series: Mapping[str, Any]) -> str:
    by_model: Mapping[str, Sequence[float]] = series.get("by_model", {})
    starts: Sequence[float] = series.get("starts", [])
    if not by_model or not starts:
        return ""
    fig, (ax,) = figure(7, 2.8)
    xs = [s - starts[0] for s in starts]
    names = sorted(by_model)
    ax.stackplot(xs, *[by_model[n] for n in names], labels=names, alpha=0.85)
    ax.set_xlabel("seconds since the first step")
    ax.set_ylabel("$ per interval")
    ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.set_title("cost over time by model")
    return svg(fig)


def savings_by_lever(levers: Mapping[str, float], cost: float, frontier: float) -> str:
    if frontier <= 0:
        return ""
    names = [LEVER_NAMES[k] for k in LEVER_NAMES]
    values = [levers.get(k, 0.0) for k in LEVER_NAMES]
    fig, (ax,) = figure(7, 2.8)
    colors = ["#2a9d8f" if v >= 0 else "#e76f51" for v in values]
    ax.barh(names, values, color=colors)
    ax.axvline(0, color="#444", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("$ saved against the step sent uncached and uncompressed to the frontier")
    ax.set_title(
        f"savings by lever: ${frontier - cost:.4f} of ${frontier:.4f} ({1 - cost / frontier:.1%})"
    )
    return svg(fig)


def quality_beside_cost(rows: Sequence[tuple[str, float, float | None]]) -> str:
    """(who, cost, quality or None) per bar pair: the fleet and the all-frontier baseline."""
    if not rows:
        return ""
    fig, (left, right) = figure(7, 2.4, columns=2)
    names = [r[0] for r in rows]
    left.bar(names, [r[1] for r in rows], color=["#264653", "#e9c46a"][: len(rows)])
    left.set_title("cost ($)")
    right.bar(names, [100 * (r[2] or 0.0) for r in rows], color=["#264653", "#e9c46a"][: len(rows)])
    right.set_ylim(0, 100)
    right.set_title("quality (% acceptable answers)")
    return svg(fig)


def latency_by_lane(lanes: Mapping[str, Mapping[str, float]]) -> str:
    if not lanes:
        return ""
    fig, (ax,) = figure(7, 2.6)
    names = list(lanes)
    width = 0.25
    for i, q in enumerate(("p50", "p95", "p99")):
        xs = [j + (i - 1) * width for j in range(len(names))]
        ax.bar(xs, [lanes[n][f"{q}_ms"] / 1000 for n in names], width, label=q)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("seconds, submit to answer")
    ax.legend(frameon=False)
    ax.set_title("latency percentiles per lane")
    return svg(fig)


def cache_layers(counts: Mapping[str, int]) -> str:
    total = sum(counts.values())
    if not total:
        return ""
    fig, (ax,) = figure(7, 1.6)
    left = 0.0
    for name, color in (("exact", "#2a9d8f"), ("semantic", "#8ab17d"), ("miss", "#ddd")):
        share = counts.get(name, 0) / total
        ax.barh([0], [share], left=left, color=color, label=f"{name} {share:.1%}")
        left += share
    ax.set_xlim(0, 1)
    ax.set_yticks([])
    ax.legend(ncol=3, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    ax.set_title(f"cache hit rate {1 - counts.get('miss', 0) / total:.1%}")
    return svg(fig)


def bars(values: Mapping[str, float], title: str, xlabel: str) -> str:
    if not values:
        return ""
    fig, (ax,) = figure(7, 0.6 + 0.3 * len(values))
    names = list(values)
    ax.barh(names, [values[n] for n in names], color="#264653")
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return svg(fig)


def session_budgets(spend: Sequence[float], advice: Mapping[str, float] | None) -> str:
    if not spend:
        return ""
    fig, (ax,) = figure(7, 2.6)
    ax.hist(spend, bins=min(30, max(5, len(spend) // 3)), color="#264653")
    if advice:
        for key, color in (("p95_usd", "#e9c46a"), ("p99_usd", "#e76f51")):
            ax.axvline(
                advice[key], color=color, linestyle="--", label=f"{key[:3]} ${advice[key]:.4f}"
            )
        ax.legend(frameon=False)
    ax.set_xlabel("$ per session")
    ax.set_ylabel("sessions")
    ax.set_title("budget use per session")
    return svg(fig)
