import json
import statistics

from policies.pricing import Price
from policies.tiers import ModelSpec
from workers.ml.tokenizer import BpeCounter
from workers.ports import CompletionRequest
from workers.providers.simulated import SimulatedProvider, confidence_of
from workers.testing import step

COUNTER = BpeCounter()
PROVIDER = SimulatedProvider(COUNTER)
SCHEMA = {
    "type": "object",
    "properties": {
        "c": {"type": "string", "enum": ["a", "b"]},
        "n": {"type": "integer", "minimum": 1, "maximum": 5},
    },
}


def request(capability: float, difficulty: float, step_id: str = "s", **kw) -> CompletionRequest:
    s = step(step_id=step_id, labels={"difficulty": difficulty}, **kw)
    model = ModelSpec("sim/m", "simulated", Price(1.0, 2.0, 0.5, 1.0), capability=capability)
    return CompletionRequest.for_step(s, model, s.messages)


def test_acceptable_iff_capability_covers_difficulty():
    assert PROVIDER.complete([request(0.6, 0.6)])[0].correct is True
    assert PROVIDER.complete([request(0.6, 0.61)])[0].correct is False


def test_deterministic_and_labelled_simulated():
    a = PROVIDER.complete([request(0.5, 0.4, "x1")])[0]
    b = PROVIDER.complete([request(0.5, 0.4, "x1")])[0]
    assert a == b and a.simulated


def test_confidence_is_informative_but_noisy():
    good = [confidence_of(0.8, 0.6, f"s{i}", "m") for i in range(400)]
    bad = [confidence_of(0.5, 0.7, f"s{i}", "m") for i in range(400)]
    assert statistics.mean(good) > statistics.mean(bad) + 0.3
    assert min(good) < 0.6 < max(bad)  # noisy: some good answers look weak, some bad look strong


def test_tokens_are_counted_with_the_tokenizer_and_capped():
    r = request(0.9, 0.1, max_output_tokens=5)
    answer = PROVIDER.complete([r])[0]
    assert answer.tokens_out <= 5
    assert answer.tokens_in == sum(COUNTER.count_many([m.text() for m in r.messages])) + 3 * 2 + 3


def test_schema_answers_fit_when_right_and_break_half_the_time_when_wrong():
    right = [
        PROVIDER.complete([request(0.9, 0.1, f"r{i}", response_schema=SCHEMA)])[0]
        for i in range(50)
    ]
    assert all(isinstance(json.loads(a.text), dict) for a in right)
    wrong = [
        PROVIDER.complete([request(0.1, 0.9, f"w{i}", response_schema=SCHEMA)])[0]
        for i in range(200)
    ]
    broken = 0
    for a in wrong:
        try:
            json.loads(a.text)
        except json.JSONDecodeError:
            broken += 1
    assert 60 < broken < 140
