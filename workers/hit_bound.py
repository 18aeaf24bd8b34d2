"""The threshold the cache worker serves semantic hits at, from the recent judged would-be
hits (policies/hit_audit.py), recomputed every few seconds rather than at each lookup."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from policies.hit_audit import AuditBound, Judged, choose_threshold
from queues.config.semantic_cache import SemanticCacheConfig
from workers.semantic_ports import Audits

log = structlog.get_logger("tierfleet.cache")


def judged_pairs(entries: list[dict[str, Any]], scorer: str) -> list[Judged]:
    """The entries of this scorer the judge gave a word on (its threshold is its own)."""
    return [
        Judged(float(e["score"]), not e["same"])
        for e in entries
        if e.get("scorer") == scorer and e.get("same") is not None
    ]


def bound_of(
    entries: list[dict[str, Any]], scorer: str, prior: float, s: SemanticCacheConfig
) -> AuditBound:
    return choose_threshold(
        judged_pairs(entries, scorer), prior, s.semantic_max_wrong_rate, s.semantic_audit_confidence
    )


@dataclass
class HitBound:
    audits: Audits
    settings: SemanticCacheConfig
    clock: Callable[[], float]
    _bound: AuditBound | None = None
    _key: tuple[str, float] = ("", 0.0)
    _at: float = 0.0

    def current(self, scorer: str, prior: float) -> AuditBound:
        now = self.clock()
        fresh = self._bound is not None and now - self._at < self.settings.semantic_audit_refresh_s
        if fresh and self._key == (scorer, prior):
            assert self._bound is not None
            return self._bound
        recent = self.audits.recent(self.settings.semantic_audit_window)
        bound = bound_of(recent, scorer, prior, self.settings)
        self._bound, self._key, self._at = bound, (scorer, prior), now
        try:
            shown = None if math.isinf(bound.threshold) else bound.threshold  # JSON has no inf
            state = {**asdict(bound), "threshold": shown, "prior": prior, "at": now}
            self.audits.publish(scorer, state)
        except Exception as exc:  # what operators read: never worth a lookup
            log.warning("cache_bound_not_published", error=str(exc))
        return bound
