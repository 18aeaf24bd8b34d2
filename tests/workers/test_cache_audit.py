"""The semantic cache's audits: a sampled share of would-be hits goes to the judge's tier as
an operator's check (no budget of the step's, on the bill as an audit), the verdict is
recorded, and the served threshold follows the verdicts."""

import pytest

from queues.messages import Outcome, StepStatus
from queues.topology import Stage
from workers import cache
from workers.admission import call_messages
from workers.infer import handle_batch
from workers.ports import Completion
from workers.semantic import CosineVerifier, SemanticLayer
from workers.testing import (
    FunctionProvider,
    MemoryBudgets,
    envelope,
    infer_hops,
    make_runtime,
)
from workers.testing.semantic import MemoryVectorStore, WordEmbedder

ASKED = "What is the checked baggage allowance on this fare?"
PARAPHRASE = "What is the checked baggage allowance on this fare please?"


def layer(prior: float) -> SemanticLayer:
    embedder = WordEmbedder()
    verifier = CosineVerifier(prior, "words@1")
    return SemanticLayer(embedder, MemoryVectorStore(), verifier, 3, 3600, scorer="cosine")


def messages(text):
    return [{"role": "system", "content": "Be careful."}, {"role": "user", "content": text}]


def remember(rt):
    env = envelope(step_id="first", messages=messages(ASKED))
    outcome = Outcome(status=StepStatus.ok, answer="23 kg", tier="cheap", model="m", provider="p")
    assert cache.remember(env, outcome, rt)


def ask(rt, text=PARAPHRASE, step_id="next"):
    cache.handle(envelope(step_id=step_id, messages=messages(text)), rt)


def paraphrase_score(rt) -> float:
    found = rt.semantic.lookup(
        PARAPHRASE,
        cache.scope_of(rt.table, envelope(messages=messages(PARAPHRASE)).step, "words@1"),
        rt.clock(),
    )
    return found.score


def audits_to(bus):
    return [env for stage, env, _ in bus.sent if stage is Stage.infer and env.audit_of]


def test_a_sampled_hit_is_served_and_put_to_the_top_tier_as_well():
    rt, bus, _ = make_runtime(semantic=layer(0.9), semantic_audit_share=1.0)
    remember(rt)
    ask(rt)
    [(_, outcome)] = bus.finalized
    assert outcome.cache_hit and outcome.semantic.threshold == 0.9
    [copy] = audits_to(bus)
    assert copy.tier == "frontier" and copy.audit_of.served and copy.judge_kind == "cache_audit"
    assert copy.shadow_of.answer == "23 kg" and copy.audit_of.cached_step == "first"
    text = call_messages(copy, rt.table)[-1].text()
    assert PARAPHRASE in text and ASKED in text and "23 kg" in text


def test_a_candidate_a_little_under_the_threshold_is_judged_but_not_served():
    rt, bus, _ = make_runtime(semantic=layer(0.97), semantic_audit_share=1.0)
    remember(rt)
    assert 0.92 < paraphrase_score(rt) < 0.97
    ask(rt)
    assert bus.finalized == []
    [copy] = audits_to(bus)
    assert not copy.audit_of.served
    assert bus.sent[-1][0] is Stage.compress  # the step goes on as a miss


def test_a_new_deployments_first_would_be_hits_are_all_judged():
    rt, bus, _ = make_runtime(semantic=layer(0.9), semantic_audit_share=0.0)
    remember(rt)
    ask(rt)
    assert len(audits_to(bus)) == 1  # none judged yet: under the warm-up, every one is


def test_no_audit_outside_the_sample_or_far_under_the_threshold():
    no_warmup = {"semantic_audit_warmup": 0}
    rt, bus, _ = make_runtime(semantic=layer(0.9), semantic_audit_share=0.0, **no_warmup)
    remember(rt)
    ask(rt)
    assert audits_to(bus) == []
    rt, bus, _ = make_runtime(semantic=layer(0.9), semantic_audit_share=1.0)
    remember(rt)
    ask(rt, "Can I change my seat after check-in?")
    assert audits_to(bus) == []


@pytest.mark.parametrize("reply, same", [("0.1", False), ("0.95", True), ("no idea", None)])
def test_the_judges_verdict_is_recorded_and_billed_as_an_audit(reply, same):
    rt, bus, _ = make_runtime(semantic=layer(0.9), semantic_audit_share=1.0)
    remember(rt)
    ask(rt)
    [copy] = audits_to(bus)
    budgets = MemoryBudgets()
    judge = FunctionProvider(lambda request: Completion(reply, 60, 2))
    rt2, bus2, stores = make_runtime(judge, budgets=budgets)
    handle_batch(infer_hops(copy), rt2)
    [record] = stores.audits
    assert record["same"] is same and record["served"] and record["scorer"] == "cosine"
    assert record["judge_model"] == "sim/gpt-4o" and record["cost_usd"] > 0
    assert stores.calls and all(c["audit"] for c in stores.calls)  # its start and answer
    assert all(c["call_id"].endswith(":audit") for c in stores.calls)
    assert bus2.finalized == [] and bus2.sent == [] and budgets.spent == 0


def audited(score: float, same: bool) -> dict:
    return {"scorer": "cosine", "score": score, "same": same, "served": True}


def test_judged_right_pairs_bring_the_threshold_down_to_a_certified_cut():
    rt, bus, stores = make_runtime(semantic=layer(0.97))
    stores.audits.extend(audited(0.93 + i * 0.0005, True) for i in range(80))
    remember(rt)
    assert paraphrase_score(rt) < 0.97
    ask(rt)
    [(env, outcome)] = bus.finalized
    assert outcome.cache_hit and outcome.semantic.threshold == pytest.approx(0.93)
    assert "audited" in env.decisions[-1].why


def test_judged_wrong_hits_stop_the_cache_serving_at_the_prior():
    rt, bus, stores = make_runtime(semantic=layer(0.9))
    stores.audits.extend(audited(0.99, i % 3 == 0) for i in range(30))
    stores.audits.extend({**audited(0.99, False), "scorer": "another"} for _ in range(30))
    remember(rt)
    ask(rt, ASKED)  # even the same words: the bound is the deployment's, not the pair's
    assert bus.finalized == []
    assert bus.sent[-1][1].decisions[-1].why == cache.MISS_BELOW
