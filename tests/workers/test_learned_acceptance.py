"""The learned acceptance check: where a provider reports no confidence, the predicted
success of (prompt, answer) stands in, against the tier's accept_min_confidence."""

import random

import pytest

from policies.learned_router import acceptance_text
from producers.training.router import save_router, train_acceptance
from queues.topology import Stage
from workers.infer import handle_batch
from workers.ports import Completion
from workers.providers.replay import Recorded, ReplayRow
from workers.testing import FunctionProvider, envelope, infer_hops, make_runtime

MODELS = ("sim/gpt-4o-mini", "sim/claude-3-5-haiku", "sim/gpt-4o")


def rows(n: int = 200) -> list[ReplayRow]:
    """A model that says it is unsure is wrong; one that answers plainly is right."""
    rng = random.Random(5)
    out = []
    for i in range(n):
        unsure = rng.random() < 0.4
        answer = "I am not sure, perhaps it is C" if unsure else f"The total is {i}"
        outcomes = {m: Recorded(answer, not unsure, 0.001) for m in MODELS}
        out.append(ReplayRow(f"q{i}", f"Add up the numbers of order {i}.", "sums", outcomes))
    return out


def test_the_check_tells_plain_answers_from_hedged_ones():
    pytest.importorskip("sklearn")
    check = train_acceptance(rows(), trained_on="generated")
    prompt = "Add up the numbers of order 7."
    plain = check.success_of(MODELS[0], acceptance_text(prompt, "The total is 7"))
    hedged = check.success_of(MODELS[0], acceptance_text(prompt, "I am not sure, perhaps it is C"))
    assert plain is not None and hedged is not None and plain > 0.8 > 0.2 > hedged
    assert check.success_of("unknown-model", "x") is None


def test_a_hedged_answer_without_provider_confidence_escalates(tmp_path):
    pytest.importorskip("sklearn")
    save_router(train_acceptance(rows(), trained_on="generated"), tmp_path / "a.json")
    provider = FunctionProvider(lambda r: Completion("I am not sure, perhaps it is C", 40, 9))
    rt, bus, _ = make_runtime(provider, acceptance_artifact=tmp_path / "a.json")
    step = {"role": "user", "content": "Add up the numbers of order 12."}
    handle_batch(infer_hops(envelope(tier="cheap", messages=[step])), rt)
    [(stage, escalated, _)] = bus.sent
    assert stage is Stage.infer and escalated.tier == "mid"
    assert "confidence" in escalated.decisions[-1].why
