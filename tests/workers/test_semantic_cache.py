"""The cache stage's semantic layer with plain doubles (a word-hash embedder, an in-memory
vector store, a cosine-reading verifier): what it serves, and every scope it must not cross."""

from queues.messages import Outcome, StepStatus
from queues.topology import Stage
from workers import cache, finalize
from workers.testing import envelope, make_runtime, semantic_layer

SYSTEM = {"role": "system", "content": "You are a careful assistant."}
ASKED = "What is the checked baggage allowance on this fare?"
PARAPHRASE = "What is the checked baggage allowance on this fare please?"
UNRELATED = "Can I change my seat after check-in?"
MISS = "no match in scope above the served threshold"


def messages(text, *, system=SYSTEM, tail=()):
    return [system, {"role": "user", "content": text}, *tail]


def answered(rt, text=ASKED, tier="cheap", **fields):
    env = envelope(step_id=fields.pop("step_id", "first"), messages=messages(text), **fields)
    outcome = Outcome(status=StepStatus.ok, answer="23 kg", tier=tier, model="m", provider="p")
    assert cache.remember(env, outcome, rt)
    return env


def lookup(rt, bus, text=PARAPHRASE, **fields):
    env = envelope(
        step_id="next", messages=fields.pop("messages", None) or messages(text), **fields
    )
    cache.handle(env, rt)
    if bus.finalized and bus.finalized[-1][0].step.step_id == "next":
        return bus.finalized.pop()
    stage, sent, _ = bus.sent.pop()
    assert stage is Stage.compress
    return sent.decisions[-1].why


def test_a_paraphrased_repeat_is_served_with_its_evidence():
    layer = semantic_layer()
    rt, bus, _ = make_runtime(semantic=layer)
    answered(rt)
    env, outcome = lookup(rt, bus)
    assert outcome.cache_hit and outcome.answer == "23 kg" and outcome.cached_from == "first"
    hit = outcome.semantic
    assert hit.question == PARAPHRASE and hit.cached_question == ASKED
    assert hit.verifier_score >= hit.threshold and 0.85 < hit.similarity < 1.0
    assert hit.embedder == "words@1"
    assert env.decisions[-1].what == "semantic_hit"


def test_a_different_question_is_not_served():
    rt, bus, _ = make_runtime(semantic=semantic_layer())
    answered(rt)
    assert lookup(rt, bus, UNRELATED) == MISS


def test_lookups_never_cross_scopes():
    rt, bus, _ = make_runtime(semantic=semantic_layer())
    answered(rt)
    assert lookup(rt, bus, tenant="globex") == MISS
    assert lookup(rt, bus, agent="billing") == MISS
    assert lookup(rt, bus, prompt_version="pv-next") == MISS
    other_system = messages(PARAPHRASE, system={"role": "system", "content": "Be terse."})
    assert lookup(rt, bus, messages=other_system) == MISS
    later_turn = [
        SYSTEM,
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": ASKED},
    ]
    assert lookup(rt, bus, messages=later_turn) == MISS
    # Same scope still hits: the misses above are the scope's doing.
    assert lookup(rt, bus)[1].cache_hit


def test_a_weaker_tiers_answer_is_not_served_to_a_step_that_needs_more():
    rt, bus, _ = make_runtime(semantic=semantic_layer())
    answered(rt, task_kind="code")  # answered by the cheap tier, though code starts at mid
    assert lookup(rt, bus, task_kind="code") == MISS
    answered(rt, step_id="strong", tier="frontier", task_kind="code")
    assert lookup(rt, bus, task_kind="code")[1].cached_from == "strong"


def test_new_tool_results_and_non_cacheable_kinds_skip_the_semantic_layer():
    rt, bus, _ = make_runtime(semantic=semantic_layer())
    answered(rt)
    call = {
        "role": "assistant",
        "tool_calls": [{"id": "c1", "function": {"name": "fare", "arguments": "{}"}}],
    }
    result = {"role": "tool", "tool_call_id": "c1", "content": "basic economy"}
    with_result = messages(PARAPHRASE, tail=[call, result])
    assert lookup(rt, bus, messages=with_result) == "the turn carries new tool results"
    assert "not semantically cacheable" in lookup(rt, bus, task_kind="tool_call")
    # ...and such steps are never stored either.
    env = envelope(step_id="t", messages=with_result)
    assert not cache.remember(env, Outcome(status=StepStatus.ok, answer="x", tier="cheap"), rt)


def test_entries_expire_after_their_ttl():
    rt, bus, _ = make_runtime(semantic=semantic_layer(ttl_s=60))
    answered(rt)
    now = rt.clock()
    rt.clock = lambda: now + 59
    assert lookup(rt, bus)[1].cache_hit
    rt.clock = lambda: now + 61
    assert lookup(rt, bus) == MISS


def test_invalidation_drops_a_prompt_version_from_both_layers():
    layer = semantic_layer()
    rt, bus, stores = make_runtime(semantic=layer)
    first = answered(rt)
    answered(rt, step_id="other-version", prompt_version="pv-other")
    stores.cache[f"tf:xc:acme:support:{first.step.prompt_version}:abc"] = {"step_id": "first"}
    counts = cache.invalidate(first.step.prompt_version, rt)
    assert counts == {"exact": 1, "semantic": 1}
    assert lookup(rt, bus) == MISS
    assert layer.store.count() == 1  # the other prompt version stays


def test_with_the_semantic_layer_off_steps_flow_on():
    rt, bus, _ = make_runtime()
    assert lookup(rt, bus) == "semantic layer off"
    assert not cache.remember(
        envelope(), Outcome(status=StepStatus.ok, answer="x", tier="cheap"), rt
    )


def test_a_lookup_and_the_later_store_embed_the_question_once():
    layer = semantic_layer()
    rt, bus, _ = make_runtime(semantic=layer)
    lookup(rt, bus, ASKED)
    env = envelope(step_id="q", messages=messages(ASKED))
    cache.remember(env, Outcome(status=StepStatus.ok, answer="a", tier="cheap"), rt)
    assert layer.embedder.calls == 1


def test_finalize_asks_the_cache_worker_to_remember_what_it_may_serve():
    ok = Outcome(status=StepStatus.ok, answer="23 kg", tier="cheap", model="m", provider="p")
    rt, bus, _ = make_runtime(semantic_cache=False)
    finalize.handle(envelope(cache_key="tf:xc:k"), ok, rt)
    assert bus.remembered == []
    rt, bus, _ = make_runtime()  # on by default, with or without a trained verifier
    finalize.handle(envelope(step_id="answered", cache_key="tf:xc:k"), ok, rt)
    assert [e.step.step_id for e, _ in bus.remembered] == ["answered"]
    finalize.handle(envelope(step_id="tool", cache_key="tf:xc:k", task_kind="tool_call"), ok, rt)
    assert len(bus.remembered) == 1  # a kind never served semantically is not stored
    hit = ok.model_copy(update={"cache_hit": True})
    rt, bus, _ = make_runtime()
    finalize.handle(envelope(step_id="h", cache_key="tf:xc:k"), hit, rt)
    assert bus.remembered == []  # a served answer is not stored again


def test_the_ledger_records_a_semantic_hits_evidence():
    rt, bus, stores = make_runtime(semantic=semantic_layer())
    answered(rt)
    env, outcome = lookup(rt, bus)
    finalize.handle(env, outcome, rt)
    entry = stores.ledger[-1]
    assert entry["cache_hit"] and entry["cached_from"] == "first" and entry["cost_usd"] == 0
    assert entry["semantic"]["cached_question"] == ASKED
    assert entry["semantic"]["similarity"] == outcome.semantic.similarity


def test_a_turn_with_an_image_is_never_answered_semantically():
    rt, bus, _ = make_runtime(semantic=semantic_layer())
    answered(rt)
    picture = {"type": "image_url", "image_url": {"url": "https://x/dog.png"}}
    turn = {"role": "user", "content": [{"type": "text", "text": PARAPHRASE}, picture]}
    assert "image" in lookup(rt, bus, messages=[SYSTEM, turn])
