"""The bill as the providers see it, from the calls stream (``workers.call_notes``): every
call recorded when it starts and when its answer (or its failure) comes back, set against
the steps' ledger.

A try that went out and never came back (its worker was killed mid-call) and a try that
timed out in the client may each have been answered and billed by the provider: they stay
on the bill as *unconfirmed*, priced at what the model's confirmed calls cost against their
worst case (the same share of this call's worst case), never silently dropped. A try the
provider refused with an error status is known not to be billed (the HTTP adapters note
each try as it goes out and each try that fails: ``workers.call_notes``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from queues.records import LedgerCall, LedgerEntry


def calls_of(entry: LedgerEntry) -> list[LedgerCall]:
    """The model calls a ledger entry paid for (entries written before per-call records
    count as one call of the answering model)."""
    if "calls" in entry.model_fields_set:
        return list(entry.calls)
    if not entry.model or entry.cache_hit:
        return []
    return [
        LedgerCall(
            model=entry.model,
            provider=entry.provider or "",
            tier=entry.tier,
            **entry.usage_fields(),
            cost_usd=entry.cost_usd,
        )
    ]


@dataclass
class _Call:
    """What the stream says of one call (one id, one try)."""

    start: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None
    unanswered: dict[str, Any] | None = None
    sent: int = 0  # tries known to have gone out
    failed: dict[int, bool | None] = field(default_factory=dict)  # try -> billed (None: unknown)


def _calls(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], _Call]:
    made: dict[tuple[str, str], _Call] = defaultdict(_Call)
    for record in records:
        call = made[(record["call_id"], record["try"])]
        event = record.get("event", "answer")  # records from before start records: answers
        if event == "start":
            call.start = call.start or record
            if not record.get("tries_noted"):  # no try notes will come: count it as sent
                call.sent = max(call.sent, 1)
        elif event == "try_sent":
            call.sent = max(call.sent, record["n"])
        elif event == "try_failed":
            call.sent = max(call.sent, record["n"])
            call.failed[record["n"]] = record.get("billed")
        elif event == "unanswered":
            call.unanswered = call.unanswered or record
        elif call.answer is None:  # an answer read twice (a batch job's results) is one call
            call.answer = record
    return made


def paid_share(answers: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Per model, what its confirmed calls cost as a share of their worst case."""
    cost: Counter[str] = Counter()
    worst: Counter[str] = Counter()
    for answer in answers:
        if answer.get("worst_usd") and not answer.get("refused"):
            cost[answer["model"]] += answer["cost_usd"]
            worst[answer["model"]] += answer["worst_usd"]
    return {model: cost[model] / worst[model] for model in worst if worst[model] > 0}


def summarize_bill(calls: Iterable[dict[str, Any]], steps: Sequence[LedgerEntry]) -> dict[str, Any]:
    """Every call against the steps' ledger: calls made twice under one id (a redelivered
    call made again), calls on no step's entry (the step crashed or failed after the call),
    shadow calls, cache audits' judge calls, and unconfirmed calls at their estimate
    (``billed_usd`` includes it; ``confirmed_usd`` does not)."""
    made = _calls(calls)
    answers = [c.answer for c in made.values() if c.answer is not None]
    share = paid_share(answers)
    per_id = Counter(call_id for (call_id, _), c in made.items() if c.answer is not None)
    on_steps = {c.call_id for e in steps for c in calls_of(e) if c.call_id}
    seen: set[str] = set()
    duplicate_usd = outside_usd = shadow_usd = audit_usd = unconfirmed_usd = worst_usd = 0.0
    outside = shadow = audit = unconfirmed = 0
    for (call_id, _), call in made.items():
        unsure = _unsure(call)
        if unsure:
            record = call.answer or call.unanswered or call.start or {}
            worst = record.get("worst_usd", 0.0)
            unconfirmed += unsure
            worst_usd += unsure * worst
            unconfirmed_usd += unsure * worst * share.get(record.get("model", ""), 1.0)
        answer = call.answer
        if answer is None:
            continue
        if call_id in seen:
            duplicate_usd += answer["cost_usd"]
        seen.add(call_id)
        if answer.get("audit"):
            audit, audit_usd = audit + 1, audit_usd + answer["cost_usd"]
        elif answer.get("shadow"):
            shadow, shadow_usd = shadow + 1, shadow_usd + answer["cost_usd"]
        elif call_id not in on_steps:
            outside, outside_usd = outside + 1, outside_usd + answer["cost_usd"]
    confirmed = sum(a["cost_usd"] for a in answers)
    return {
        "provider_calls": len(answers),
        "billed_usd": round(confirmed + unconfirmed_usd, 8),
        "confirmed_usd": round(confirmed, 8),
        "duplicate_calls": sum(n - 1 for n in per_id.values()),
        "duplicate_usd": round(duplicate_usd, 8),
        "calls_outside_steps": outside,
        "outside_usd": round(outside_usd, 8),
        "shadow_calls": shadow,
        "shadow_usd": round(shadow_usd, 8),
        "audit_calls": audit,
        "audit_usd": round(audit_usd, 8),
        "unconfirmed_calls": unconfirmed,
        "unconfirmed_usd": round(unconfirmed_usd, 8),
        "unconfirmed_worst_usd": round(worst_usd, 8),
    }


def _unsure(call: _Call) -> int:
    """How many tries of this call the provider may have billed with no answer seen. An
    ended call: its tries that failed unsure (timed out). A call cut off: every try that
    went out and is not known to have been refused."""
    if call.answer is not None or call.unanswered is not None:
        return sum(1 for billed in call.failed.values() if billed is not False)
    refused = sum(1 for billed in call.failed.values() if billed is False)
    return max(0, call.sent - refused)
