"""The local model on RouterBench's multiple-choice prompts: its accuracy, how well its
log-probability confidence separates its right answers from its wrong ones, and a cascade
from it to the recorded frontier answers that accepts a local answer at or above a
confidence threshold. The threshold is chosen on the dev split and reported on the test
split (split by prompt, as `bench routing` splits)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.text import choice_letter
from producers.bench.routing_replay import split_by_prompt
from workers.engines.base import Engine, EngineRequest
from workers.providers.replay import ReplayRow, read_routerbench

FRONTIER = "gpt-4-1106-preview"
THRESHOLDS = tuple(round(0.05 * k, 2) for k in range(21))
WITHIN = 0.02  # the cascade may lose at most this much accuracy against the frontier alone


@dataclass(frozen=True)
class McItem:
    prompt: str
    eval_name: str
    gold: str
    frontier_correct: bool
    frontier_usd: float


@dataclass(frozen=True)
class Scored:
    item: McItem
    correct: bool
    confidence: float
    usd: float  # the local answer's share of engine time at the machine's hourly price


def gold_letter(row: ReplayRow) -> str | None:
    """The choice every correct recorded answer gives and no wrong one does (None: not a
    multiple-choice row, or the recorded answers do not settle it)."""
    right = {choice_letter(o.response) for o in row.outcomes.values() if o.correct} - {None}
    wrong = {choice_letter(o.response) for o in row.outcomes.values() if not o.correct}
    if len(right) != 1 or right & wrong:
        return None
    return next(iter(right))


def mc_items(path: Path, test_share: float, per_split: int) -> tuple[list[McItem], list[McItem]]:
    rows = [r for r in read_routerbench(path) if FRONTIER in r.outcomes]
    dev, test = split_by_prompt(rows, test_share)

    def items(split: Sequence[ReplayRow]) -> list[McItem]:
        out = []
        for row in split:
            if (gold := gold_letter(row)) is not None:
                frontier = row.outcomes[FRONTIER]
                out.append(
                    McItem(row.prompt, row.eval_name, gold, frontier.correct, frontier.cost_usd)
                )
        random.Random(7).shuffle(out)  # the files come grouped by eval: mix them
        return out[:per_split]

    return items(dev), items(test)


def answer_all(
    engine: Engine, items: Sequence[McItem], batch: int, hourly_usd: float
) -> list[Scored]:
    out = []
    for at in range(0, len(items), batch):
        chunk = items[at : at + batch]
        run = engine.generate(
            [EngineRequest(({"role": "user", "content": i.prompt},), 4) for i in chunk]
        )
        for item, g, engine_s in zip(chunk, run.generations, run.engine_shares(), strict=True):
            usd = hourly_usd * engine_s / 3600
            confidence = g.confidence or 0.0
            out.append(Scored(item, choice_letter(g.text) == item.gold, confidence, usd))
    return out


def auroc(scored: Sequence[Scored]) -> float | None:
    """The chance a right answer is more confident than a wrong one (ties count half)."""
    right = [s.confidence for s in scored if s.correct]
    wrong = [s.confidence for s in scored if not s.correct]
    if not right or not wrong:
        return None
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


def ece(scored: Sequence[Scored], bins: int = 10) -> float:
    """Expected calibration error: confidence against accuracy in equal-width bins."""
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [
            s for s in scored if lo <= s.confidence < hi or (b == bins - 1 and s.confidence == 1.0)
        ]
        if members:
            accuracy = sum(s.correct for s in members) / len(members)
            confidence = sum(s.confidence for s in members) / len(members)
            total += len(members) / len(scored) * abs(accuracy - confidence)
    return total


def cascade(scored: Sequence[Scored], threshold: float) -> dict[str, float]:
    """Local answers at or above ``threshold`` accepted, the rest answered by the frontier's
    recorded answer (paying for both calls)."""
    n = len(scored)
    kept = [s.confidence >= threshold for s in scored]
    correct = sum(
        s.correct if k else s.item.frontier_correct for s, k in zip(scored, kept, strict=True)
    )
    usd = sum(
        s.usd + (0.0 if k else s.item.frontier_usd) for s, k in zip(scored, kept, strict=True)
    )
    return {
        "threshold": threshold,
        "accuracy": round(correct / n, 4),
        "usd_per_prompt": round(usd / n, 7),
        "local_share": round(sum(kept) / n, 4),
    }


def frontier_only(scored: Sequence[Scored]) -> dict[str, float]:
    n = len(scored)
    return {
        "accuracy": round(sum(s.item.frontier_correct for s in scored) / n, 4),
        "usd_per_prompt": round(sum(s.item.frontier_usd for s in scored) / n, 7),
    }


def choose_threshold(dev: Sequence[Scored]) -> float:
    """The lowest threshold (the most local answers) whose dev accuracy is within WITHIN of
    the frontier's alone; 1.0 (nothing local) when none is."""
    floor = frontier_only(dev)["accuracy"] - WITHIN
    fits = [t for t in THRESHOLDS if cascade(dev, t)["accuracy"] >= floor]
    return min(fits) if fits else 1.0


def accuracy_figures(
    engine: Engine, path: Path, hourly_usd: float, per_split: int, batch: int
) -> dict[str, Any]:
    dev_items, test_items = mc_items(path, 0.3, per_split)
    dev = answer_all(engine, dev_items, batch, hourly_usd)
    test = answer_all(engine, test_items, batch, hourly_usd)
    chosen = choose_threshold(dev)
    by_eval: dict[str, list[Scored]] = {}
    for s in test:
        by_eval.setdefault(s.item.eval_name, []).append(s)
    at_chosen = cascade(test, chosen)
    frontier = frontier_only(test)
    return {
        "prompts": {"dev": len(dev), "test": len(test)},
        "accuracy": round(sum(s.correct for s in test) / len(test), 4),
        "accuracy_by_eval": {
            name: round(sum(s.correct for s in rows) / len(rows), 4)
            for name, rows in by_eval.items()
        },
        "auroc": None if (a := auroc(test)) is None else round(a, 4),
        "ece": round(ece(test), 4),
        "mean_confidence": round(sum(s.confidence for s in test) / len(test), 4),
        "frontier": {"model": FRONTIER, **frontier},
        "cascade_threshold_from_dev": chosen,
        "cascade": {
            **at_chosen,
            "cost_vs_frontier": round(at_chosen["usd_per_prompt"] / frontier["usd_per_prompt"], 4),
        },
        "cascade_curve": [cascade(test, t) for t in THRESHOLDS],
    }
