"""The semantic cache through the real fleet: Redis, Celery workers as processes, the cache
worker owning an embedded Qdrant shard, MiniLM embeddings and a verifier trained here on
generated question pairs. A paraphrased repeat is served; another tenant, another prompt
version or a turn with new tool results is not; invalidation and TTL expiry remove entries."""

import itertools
import random
import time

import pytest

from policies.cache_verifier import save_verifier
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.training.cache_verifier import PairVectors, train_verifier
from producers.training.pairs import Pair
from queues.messages import StepStatus
from tests.integration.conftest import settings_for

pytestmark = pytest.mark.integration

PLACES = [
    "Lisbon",
    "Oslo",
    "Madrid",
    "Vienna",
    "Prague",
    "Dublin",
    "Athens",
    "Warsaw",
    "Zurich",
    "Munich",
    "Krakow",
    "Porto",
    "Seville",
    "Milan",
    "Naples",
    "Bergen",
]
PHRASINGS = [  # two wordings of the same question about {p}
    (
        "What is the baggage allowance on flights to {p}?",
        "How much luggage can I take on a flight to {p}?",
    ),
    ("Can I cancel my booking to {p} for free?", "Is it free to cancel my reservation to {p}?"),
    ("When does the first train to {p} leave?", "What time is the earliest train to {p}?"),
    ("Do I need a visa to travel to {p}?", "Is a visa required for a trip to {p}?"),
]
TTL_S = 8


def generated_pairs(seed: int = 0) -> list[Pair]:
    """Same question in other words (1); the same words about another place, or another
    question about the same place (0)."""
    rng = random.Random(seed)
    pairs = []
    for (a, b), p in itertools.product(PHRASINGS, PLACES):
        q = rng.choice([x for x in PLACES if x != p])
        other = rng.choice([x for x in PHRASINGS if x != (a, b)])
        pairs += [
            Pair(a.format(p=p), b.format(p=p), 1),
            Pair(b.format(p=p), a.format(p=p), 1),
            Pair(a.format(p=p), a.format(p=q), 0),
            Pair(b.format(p=p), b.format(p=q), 0),
            Pair(a.format(p=p), other[1].format(p=p), 0),
        ]
    return pairs


@pytest.fixture(scope="module")
def verifier_path(tmp_path_factory):
    pytest.importorskip("sklearn")
    from workers.ml.embedder import MiniLMEmbedder

    pairs = generated_pairs()
    embedder = MiniLMEmbedder()
    verifier = train_verifier(
        pairs,
        PairVectors(embedder, pairs),
        embedder=embedder.id,
        max_wrong_rate=0.05,
    )
    path = tmp_path_factory.mktemp("verifier") / "verifier.npz"
    save_verifier(verifier, path)
    return path


def ask(
    text: str,
    *,
    tenant: str = "t1",
    system: str = "You are a travel assistant.",
    tail: tuple = (),
    **fields,
) -> dict:
    return {
        "tenant": tenant,
        "agent": "travel",
        "session_id": f"s-{time.monotonic_ns()}",
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": text},
            *tail,
        ],
        **fields,
    }


def test_the_semantic_cache_in_the_fleet(redis_server, tmp_path, verifier_path):
    settings = settings_for(
        redis_server,
        db=6,
        semantic_cache=True,
        cache_verifier=verifier_path,
        vector_dir=tmp_path / "vectors",
        semantic_ttl_s=TTL_S,
    )
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local = LocalFleet(settings).start(own_redis=False)
        try:

            def run(step: dict):
                (result,) = fleet.wait(fleet.submit_many([step]), timeout=60)
                assert result.status is StepStatus.ok, result.reason
                return result

            def stored(step: dict):
                """Answer a step, then wait until the cache worker has stored it (its store
                request is queued before this no-op invalidation, and answered first)."""
                first = run(step)
                fleet.invalidate_cache("pv-nothing-here")
                return first

            asked, paraphrase = (s.format(p="Lisbon") for s in PHRASINGS[0])
            first = stored(ask(asked))
            hit = run(ask(paraphrase))
            assert hit.cache_hit and hit.cached_from == first.step_id and hit.cost_usd == 0
            assert hit.semantic.cached_question == asked and hit.answer == first.answer
            assert hit.semantic.verifier_score >= hit.semantic.threshold

            # Never across tenants, prompt versions or past a new tool result.
            assert not run(ask(paraphrase, tenant="t2")).cache_hit
            assert not run(ask(paraphrase, system="You are a rail assistant.")).cache_hit
            call = {
                "role": "assistant",
                "tool_calls": [{"id": "c1", "function": {"name": "fares", "arguments": "{}"}}],
            }
            result = {"role": "tool", "tool_call_id": "c1", "content": "Lisbon: 1 bag, 23 kg"}
            after_tool = run(ask(paraphrase, tail=(call, result)))
            assert not after_tool.cache_hit
            assert any(d.why == "the turn carries new tool results" for d in after_tool.decisions)
            # A question about another place is a miss too (the verifier's doing).
            assert not run(ask(PHRASINGS[0][1].format(p="Oslo"))).cache_hit

            # Invalidation drops the prompt version: exact and semantic entries alike.
            counts = fleet.invalidate_cache(prompt_version(ask(asked)))
            assert counts["semantic"] >= 1 and counts["exact"] >= 1
            assert not run(ask(paraphrase)).cache_hit

            # TTL: served while fresh, gone after it.
            stored(ask(PHRASINGS[3][0].format(p="Athens")))
            assert run(ask(PHRASINGS[3][1].format(p="Athens"))).cache_hit
            time.sleep(TTL_S + 1)
            assert not run(ask(PHRASINGS[3][1].format(p="Athens"))).cache_hit

            hits = [e for e in fleet.ledger() if e.semantic]
            assert {e.tenant for e in hits} == {"t1"}
            assert all(e.semantic.similarity > 0 and e.cached_from for e in hits)
        finally:
            local.stop()


def prompt_version(step: dict) -> str:
    from queues.step import AgentStep

    return AgentStep.model_validate(step).prompt_version
