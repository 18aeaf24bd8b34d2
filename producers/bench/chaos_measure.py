"""What the chaos run measures: what became of every step, every fuzzed message and every
paid call, and how long the fleet took to recover from each fault. Every figure is counted
from the fleet's own records and the provider's bill, none asserted."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from producers.bench.chaos_faults import Run
from producers.bill import summarize_bill
from producers.fakes.provider_server.server import ProviderServer
from producers.fleet import Fleet
from producers.report import unique_steps
from queues.messages import StepResult, StepStatus
from queues.records import LedgerEntry

BILL_PARTS = ("confirmed_usd", "unconfirmed_calls", "unconfirmed_usd", "calls_outside_steps")


def measure(
    fleet: Fleet,
    provider: ProviderServer,
    steps: list[dict[str, Any]],
    results: dict[str, StepResult],
    run: Run,
    sentinel: str,
    work: Path,
) -> dict[str, Any]:
    ledger = fleet.ledger()
    dead = [d.record for d in fleet.dead_letters(100_000)] + fleet.archived_dead_letters()
    dead_text = json.dumps([d.model_dump(mode="json") for d in dead])
    return {
        **step_fates(steps, results, ledger),
        **bill_figures(fleet, provider, ledger),
        "budget_overspend_usd": round(overspend(fleet), 9),
        "fuzz_sent": len(run.fuzz),
        "fuzz_accounted": sum(1 for m in run.fuzz if m in dead_text),
        "good_batchmates_lost": len(good_lost(steps, results)),
        "cross_tenant_hits": cross_tenant_hits(steps, results),
        "secret_hits": secret_hits(fleet, sentinel, work, dead_text),
        "redelivered_steps": sum(
            1 for r in results.values() if any(d.what == "redelivered" for d in r.decisions)
        ),
        "max_recovery_s": round(max(recovery_times(results, run), default=0.0), 1),
        "restart_recovery_s": restart_recovery(results, run),
        "lost_steps": sorted(s["step_id"] for s in steps if s["step_id"] not in results)[:20],
        # What the fleet itself reports as lost (Fleet.lost): a loss is never silent.
        "lost_reported_by_fleet": sum(1 for r in fleet.lost(0.0) if "/chaos-" in r),
    }


def step_fates(
    steps: list[dict[str, Any]], results: dict[str, StepResult], ledger: list[LedgerEntry]
) -> dict[str, Any]:
    """Answered once, stopped by a budget, dead-lettered (and why), lost, answered twice."""
    entries = Counter(e.key for e in ledger)
    statuses = Counter(r.status for r in results.values())
    dead_reasons = Counter(
        r.reason.split(":")[0][:60]
        for r in results.values()
        if r.status is StepStatus.dead_lettered
    )
    return {
        "steps": len(steps),
        "answered_once": sum(
            1
            for s in steps
            if (r := results.get(s["step_id"])) is not None
            and r.status is StepStatus.ok
            and entries[(s["tenant"], s["step_id"])] == 1
        ),
        "budget_exceeded": statuses[StepStatus.budget_exceeded],
        "dead_lettered": statuses[StepStatus.dead_lettered],
        "dead_letter_reasons": dict(dead_reasons.most_common()),
        "lost": sum(1 for s in steps if s["step_id"] not in results),
        "duplicate_answers": sum(1 for n in entries.values() if n > 1),
    }


def bill_figures(
    fleet: Fleet, provider: ProviderServer, ledger: list[LedgerEntry]
) -> dict[str, Any]:
    """The fleet's bill (calls stream and ledger) against the provider's own."""
    bill = summarize_bill(fleet.calls(), unique_steps(ledger))
    provider_usd = provider.account.bill.snapshot()["total_usd"]
    gap = 100 * (bill["billed_usd"] - provider_usd) / provider_usd if provider_usd else 0.0
    return {
        "ledger_vs_provider_bill_pct": round(gap, 4),
        "provider_bill_usd": round(provider_usd, 6),
        "duplicate_calls": bill["duplicate_calls"],
        "ledger_bill": {k: bill[k] for k in BILL_PARTS},
    }


def overspend(fleet: Fleet) -> float:
    """Dollars spent past the hard limits of the workload's tight sessions."""
    over = 0.0
    for tenant in ("t0", "t1", "t2"):
        for s in range(5):
            state = fleet.session_budget(tenant, f"tight{s}")
            if state.limit_nano is not None:
                over += max(0, state.spent_nano - state.limit_nano) / 1e9
    return over


def good_lost(steps: list[dict[str, Any]], results: dict[str, StepResult]) -> list[str]:
    """Good steps with no result, or dead-lettered for a reason other than the faults
    (delivered too often, retries used up)."""
    return [
        s["step_id"]
        for s in steps
        if s["step_id"] not in results
        or (
            results[s["step_id"]].status is StepStatus.dead_lettered
            and "answered 5" not in results[s["step_id"]].reason
            and "retries exhausted" not in results[s["step_id"]].reason
        )
    ]


def cross_tenant_hits(steps: list[dict[str, Any]], results: dict[str, StepResult]) -> int:
    """Cache hits served from another tenant's step."""
    tenant_of = {s["step_id"]: s["tenant"] for s in steps}
    return sum(
        1
        for r in results.values()
        if r.cached_from and tenant_of.get(r.cached_from, r.tenant) != r.tenant
    )


def secret_hits(fleet: Fleet, sentinel: str, work: Path, dead_text: str) -> int:
    """Where the provider key turns up: every log and archive file, every Redis key and
    string value, every dead letter."""
    hits = sum(
        1
        for path in work.rglob("*")
        if path.is_file() and sentinel in path.read_text(errors="replace")
    )
    hits += int(sentinel in dead_text)
    for key in fleet.redis.scan_iter(count=1000):
        if sentinel.encode() in key:
            hits += 1
        elif fleet.redis.type(key) == b"string":
            value = fleet.redis.get(key) or b""
            hits += int(sentinel.encode() in value)
    return hits


def recovery_times(results: dict[str, StepResult], run: Run) -> list[float]:
    """How long each fault stranded a step: from the last kill of a worker of the stage
    that redelivered it (or the last Redis or broker restart, whichever came later) to the
    moment its message came back (its "redelivered" decision)."""
    times = []
    for result in results.values():
        for d in result.decisions:
            if d.what != "redelivered":
                continue
            group = "infer-" if d.stage == "infer" else d.stage
            before = [k.at for k in run.kills if k.group.startswith(group) and k.at <= d.at]
            before += [r.down_at for r in run.restarts if r.down_at <= d.at]
            if before:
                times.append(d.at - max(before))
    return times


def restart_recovery(results: dict[str, StepResult], run: Run) -> dict[str, dict[str, Any]]:
    """Per restart: the steps in flight when it went down (first seen before, last after),
    and from going down to the first thing any stage did once it was back up (None: nothing
    moved again)."""
    moves = sorted(d.at for r in results.values() for d in r.decisions)
    spans = [(r.decisions[0].at, r.decisions[-1].at) for r in results.values() if r.decisions]
    out: dict[str, dict[str, Any]] = {}
    for restart in run.restarts:
        after = next((at for at in moves if at > restart.up_at), None)
        out[restart.what] = {
            "in_flight": sum(1 for first, last in spans if first < restart.down_at < last),
            "recovery_s": None if after is None else round(after - restart.down_at, 1),
        }
    return out
