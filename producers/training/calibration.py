"""Recorded outcomes for calibrating each model's confidence (``policies.calibration``):
from the ledger, each accepted answer's raw confidence beside its label (simulated and
replay steps carry one), and from shadow evaluation, the accepted answer's raw confidence
beside whether the top tier agreed (the label real traffic has)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from policies.calibration import MIN_OUTCOMES, fit_models
from queues.records import LedgerEntry, ShadowRecord


def recorded_outcomes(
    entries: Iterable[LedgerEntry], shadows: Iterable[ShadowRecord]
) -> dict[str, list[tuple[float, bool]]]:
    """Per model, (raw confidence, right) pairs."""
    pairs: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for entry in entries:
        if entry.correct is None or entry.status != "ok":
            continue
        for call in entry.calls:
            if call.accepted and call.confidence is not None and call.model == entry.model:
                pairs[call.model].append((call.confidence, entry.correct))
    for record in shadows:
        if record.accepted_confidence is not None:
            pairs[record.accepted_model].append((record.accepted_confidence, record.agree))
    return dict(pairs)


def write_calibration(
    entries: Iterable[LedgerEntry], shadows: Iterable[ShadowRecord], out: Path
) -> dict[str, Any]:
    outcomes = recorded_outcomes(entries, shadows)
    models = fit_models(outcomes)
    doc = {
        "version": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "outcomes": {m: len(p) for m, p in sorted(outcomes.items())},
        "min_outcomes": MIN_OUTCOMES,
        "models": models,
    }
    out.write_text(json.dumps(doc, indent=2))
    return doc
