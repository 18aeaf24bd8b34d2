"""A second kind of semantic-cache traffic, assembled here: questions an airline or shop
support agent is asked, labelled by construction. Each intent has several wordings with a
slot (a city, a booking code, a day); two questions are duplicates when they share the intent
and the slot value, whatever the wording. The hard negatives are what agent traffic is full of
and Quora pairs are not: the same wording with another slot value ("flights to Lisbon" /
"flights to Porto", "order K7Q2PX" / "order M4T9RB"), or with the direction turned ("to" /
"from"), which embeddings place a hair apart.

Synthetic: what it measures is how a threshold fitted on one kind of traffic fares on
another, not how often real users rephrase."""

from __future__ import annotations

import random
import string

from producers.training.pairs import Pair

CITIES = [
    "Lisbon", "Porto", "Madrid", "Seville", "Oslo", "Bergen", "Vienna", "Prague", "Dublin",
    "Athens", "Warsaw", "Zurich", "Munich", "Milan", "Naples", "Krakow", "Lyon", "Nice",
]  # fmt: skip
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# intent -> (slot kind, wordings). Wordings of one intent ask the same thing.
INTENTS: dict[str, tuple[str, list[str]]] = {
    "baggage_to": (
        "city",
        [
            "What is the baggage allowance on flights to {x}?",
            "How much luggage can I take on a flight to {x}?",
            "What's the checked bag limit for flights to {x}?",
        ],
    ),
    "baggage_from": (
        "city",
        [
            "What is the baggage allowance on flights from {x}?",
            "How much luggage can I take on a flight from {x}?",
            "What's the checked bag limit for flights from {x}?",
        ],
    ),
    "cancel": (
        "code",
        [
            "Can I cancel booking {x} for free?",
            "Is it free to cancel my reservation {x}?",
            "Will I be charged if I cancel booking {x}?",
        ],
    ),
    "order_status": (
        "code",
        [
            "What is the status of order {x}?",
            "Where is my order {x} right now?",
            "Can you tell me where order {x} is?",
        ],
    ),
    "refund_time": (
        "code",
        [
            "How long does the refund for order {x} take?",
            "When will I get my money back for order {x}?",
            "How many days until order {x} is refunded?",
        ],
    ),
    "office_hours": (
        "city",
        [
            "What time does your {x} office open?",
            "When does the {x} branch open in the morning?",
            "What are the opening hours of the {x} office?",
        ],
    ),
    "rebook_day": (
        "day",
        [
            "Can I move my flight to {x}?",
            "Is it possible to change my flight to {x}?",
            "Could you rebook my flight for {x}?",
        ],
    ),
}


def _code(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(6))


def _slots(kind: str, codes: list[str]) -> list[str]:
    return {"city": CITIES, "day": DAYS, "code": codes}[kind]


def agent_pairs(per_intent: int = 400, seed: int = 0) -> list[Pair]:
    """Duplicates and hard negatives in about equal numbers, shuffled."""
    rng = random.Random(seed)
    codes = [_code(rng) for _ in range(40)]
    pairs: list[Pair] = []
    names = sorted(INTENTS)
    for intent in names:
        kind, wordings = INTENTS[intent]
        values = _slots(kind, codes)
        for _ in range(per_intent):
            x = rng.choice(values)
            a, b = rng.sample(wordings, 2)
            pairs.append(Pair(a.format(x=x), b.format(x=x), 1))
            y = rng.choice([v for v in values if v != x])
            w = rng.choice(wordings)
            roll = rng.random()
            if roll < 0.6:  # the same wording, another slot value
                pairs.append(Pair(w.format(x=x), w.format(x=y), 0))
            elif roll < 0.8 and intent.startswith("baggage"):  # the direction turned
                other = "baggage_from" if intent == "baggage_to" else "baggage_to"
                k = wordings.index(w)
                pairs.append(Pair(w.format(x=x), INTENTS[other][1][k].format(x=x), 0))
            else:  # another intent about the same kind of thing
                peers = [n for n in names if n != intent and INTENTS[n][0] == kind]
                peer = rng.choice(peers) if peers else intent
                v = rng.choice(INTENTS[peer][1])
                pairs.append(Pair(w.format(x=x), v.format(x=x if peer != intent else y), 0))
    rng.shuffle(pairs)
    return pairs
