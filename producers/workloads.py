"""Workloads: a seeded generator of multi-turn agent sessions for the demo and benchmarks,
and a JSONL reader and writer for ``tierfleet run`` (recorded data: producers/recorded.py).

A workload is a list of sessions; each session is its steps in order, each step carrying the
full history up to that turn. The scheduler runs step k of every session in wave k, as agents
do: a session's next call waits for its previous answer, sessions run side by side.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from queues.step import AgentStep, Lane


@dataclass
class Workload:
    sessions: list[list[AgentStep]]
    budgets: dict[tuple[str, str], float] = field(default_factory=dict)  # (tenant, session) -> USD
    start_wave: list[int] = field(default_factory=list)

    @property
    def steps(self) -> list[AgentStep]:
        return [step for session in self.sessions for step in session]

    def waves(self) -> list[list[AgentStep]]:
        starts = self.start_wave or [0] * len(self.sessions)
        waves: dict[int, list[AgentStep]] = defaultdict(list)
        for start, session in zip(starts, self.sessions, strict=True):
            for k, step in enumerate(session):
                waves[start + k].append(step)
        return [waves[w] for w in sorted(waves)]


# Difficulty ranges by task kind: the simulated models' capabilities are 0.55 / 0.75 / 0.92.
DIFFICULTY = {
    "classify": (0.0, 0.6),
    "extract": (0.1, 0.7),
    "chat": (0.0, 0.65),
    "tool_call": (0.2, 0.8),
    "summarize": (0.1, 0.7),
    "code": (0.3, 0.9),
    "plan": (0.35, 0.95),
    "reason": (0.5, 1.0),
}
MAX_TOKENS = {
    "classify": 64,
    "extract": 256,
    "chat": 400,
    "tool_call": 200,
    "summarize": 500,
    "code": 1200,
    "plan": 800,
    "reason": 1000,
}
FAQ = [
    "What is the checked baggage allowance for economy passengers?",
    "Can I change my flight within 24 hours of booking?",
    "How do I add a lap infant to my reservation?",
    "What happens if my flight is cancelled by the airline?",
    "Is travel insurance refundable after purchase?",
    "How early should I arrive for an international flight?",
]
TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "booking", "baggage", "other"]},
        "urgency": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["category", "urgency"],
}
RESERVATION_TOOL = {
    "type": "function",
    "function": {
        "name": "get_reservation_details",
        "description": "Look up a reservation by its six-character id.",
        "parameters": {
            "type": "object",
            "properties": {"reservation_id": {"type": "string"}},
            "required": ["reservation_id"],
        },
    },
}


def policy_text(rng: random.Random, rules: int) -> str:
    topics = ["changes", "cancellations", "baggage", "upgrades", "refunds", "insurance", "pets"]
    lines = ["You are an airline customer-service agent. Follow the policy exactly."]
    for i in range(rules):
        topic = rng.choice(topics)
        lines.append(
            f"{i + 1}. For {topic}, confirm the user id and reservation id, explain the "
            f"fee of ${rng.randint(0, 300)}, and ask for explicit confirmation first."
        )
    return "\n".join(lines)


def reservation_json(rng: random.Random, rid: str, flights: int) -> str:
    return json.dumps(
        {
            "reservation_id": rid,
            "user_id": f"user_{rng.randint(1000, 9999)}",
            "cabin": rng.choice(["basic_economy", "economy", "business"]),
            "flights": [
                {
                    "flight_number": f"HAT{rng.randint(100, 999)}",
                    "date": f"2024-05-{d + 1:02d}",
                    "origin": rng.choice(["JFK", "SFO", "ORD", "LAX"]),
                    "destination": rng.choice(["SEA", "BOS", "MIA", "DEN"]),
                    "price": rng.randint(80, 900),
                    "status": "available",
                }
                for d in range(flights)
            ],
            "payment_history": [
                {
                    "payment_id": f"credit_card_{rng.randint(10**6, 10**7)}",
                    "amount": rng.randint(50, 2000),
                }
                for _ in range(flights)
            ],
        },
        indent=1,
    )


def _step(
    rng: random.Random,
    session: dict[str, Any],
    messages: list[dict[str, Any]],
    kind: str,
    *,
    difficulty: float | None = None,
    **extra: Any,
) -> AgentStep:
    low, high = DIFFICULTY[kind]
    return AgentStep.model_validate(
        {
            **session,
            # Seeded ids: the simulated provider seeds its noise by step id, so a seed replays.
            "step_id": f"{session['session_id']}-m{len(messages)}",
            "messages": list(messages),
            "task_kind": kind,
            "max_output_tokens": MAX_TOKENS[kind],
            "labels": {
                "difficulty": round(
                    difficulty if difficulty is not None else rng.uniform(low, high), 3
                )
            },
            **extra,
        }
    )


def support_session(rng: random.Random, session: dict[str, Any], system: str) -> list[AgentStep]:
    """Airline support: a (often repeated) FAQ, a tool lookup, then answers over its result."""
    msgs: list[dict[str, Any]] = [{"role": "system", "content": system}]
    faq = rng.randrange(len(FAQ))
    msgs.append({"role": "user", "content": FAQ[faq]})
    faq_difficulty = random.Random(faq).uniform(0.0, 0.6)  # the same question is equally hard
    steps = [_step(rng, session, msgs, "chat", difficulty=faq_difficulty, tools=[RESERVATION_TOOL])]
    msgs.append({"role": "assistant", "content": "Here is the policy on that. Anything else?"})
    for turn in range(rng.randint(1, 3)):
        rid = "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))
        msgs.append(
            {"role": "user", "content": f"Please change my reservation {rid} to a later flight."}
        )
        steps.append(_step(rng, session, msgs, "tool_call", tools=[RESERVATION_TOOL]))
        call_id = f"call_{rid}_{turn}"
        msgs.append(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": "get_reservation_details",
                            "arguments": json.dumps({"reservation_id": rid}),
                        },
                    }
                ],
            }
        )
        msgs.append(
            {
                "role": "tool",
                "tool_call_id": call_id,
                "content": reservation_json(rng, rid, rng.randint(2, 14)),
            }
        )
        steps.append(
            _step(rng, session, msgs, rng.choice(["chat", "plan"]), tools=[RESERVATION_TOOL])
        )
        msgs.append({"role": "assistant", "content": f"I found {rid}. Shall I proceed?"})
    return steps


def desk_session(rng: random.Random, session: dict[str, Any]) -> list[AgentStep]:
    """A back-office agent: triage with a schema, extraction, summaries, code and reasoning."""
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are an operations assistant for an airline back office."}
    ]
    steps = []
    for turn in range(rng.randint(2, 4)):
        kind = rng.choice(["classify", "extract", "summarize", "code", "reason", "classify"])
        ticket = f"Ticket {rng.randint(10000, 99999)}: {rng.choice(FAQ)} (turn {turn})"
        msgs.append({"role": "user", "content": f"[{kind}] {ticket}"})
        schema = TRIAGE_SCHEMA if kind in ("classify", "extract") else None
        steps.append(_step(rng, session, msgs, kind, response_schema=schema))
        msgs.append({"role": "assistant", "content": "Done."})
    return steps


def generate_workload(sessions: int = 40, seed: int = 7) -> Workload:
    rng = random.Random(seed)
    system = policy_text(random.Random(seed), rules=60)  # one agent, one stable prompt
    tenants = ["acme", "globex"]
    out: list[list[AgentStep]] = []
    budgets: dict[tuple[str, str], float] = {}
    for i in range(sessions):
        tenant = tenants[i % len(tenants)]
        sid = f"s{seed}-{i:04d}"
        if rng.random() < 0.6:
            meta = {
                "tenant": tenant,
                "agent": "airline-support",
                "workflow": "rebooking",
                "session_id": sid,
            }
            out.append(support_session(rng, meta, system))
        else:
            meta = {
                "tenant": tenant,
                "agent": "ops-desk",
                "workflow": "triage",
                "session_id": sid,
                "lane": rng.choice([Lane.standard, Lane.batch]),
            }
            out.append(desk_session(rng, meta))
        if rng.random() < 0.1:
            budgets[(tenant, sid)] = 0.002  # a tight hard limit: some of its steps stop
    starts = [rng.randint(0, 3) for _ in out]
    return Workload(out, budgets, starts)


def read_jsonl(path: Path) -> Workload:
    """One AgentStep JSON per line; sessions keep their lines' order."""
    by_session: dict[tuple[str, str], list[AgentStep]] = defaultdict(list)
    with path.open() as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    step = AgentStep.model_validate_json(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{n}: {exc}") from exc
                by_session[(step.tenant, step.session_id)].append(step)
    return Workload(list(by_session.values()))


def write_jsonl(steps: Iterable[AgentStep], path: Path) -> None:
    with path.open("w") as fh:
        for step in steps:
            fh.write(step.model_dump_json(exclude_defaults=False) + "\n")
