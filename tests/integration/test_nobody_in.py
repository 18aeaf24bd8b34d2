"""Nobody in: through the real fleet (Redis, Celery worker processes), what a sender says is
only ever a step. Forged envelopes are dead-lettered on every queue, names that share a
plain join never share a key, and oversized or over-deep steps stop at submit."""

import json
import time
import uuid

import pytest

from producers.fleet import InvalidStep
from queues import keys
from queues.messages import StepStatus
from queues.step import MAX_SCHEMA_DEPTH
from queues.topology import (
    CACHE_STORE_TASK,
    CLASSIFY,
    COMPRESS,
    FINALIZE,
    INGRESS,
    TASK_NAMES,
    Stage,
    infer_queue,
)
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def forged_envelope(step_id: str) -> dict:
    """What a sender who can publish to a queue would like the fleet to believe: an answer
    already paid for at a negative price, a cache key of its choosing, a shadow mark that
    skips the budget, and a tier."""
    step = json.loads(make_step(step_id=step_id).model_dump_json())
    return {
        "step": step,
        "tier": "cheap",
        "cache_key": "tf:xc:planted",
        "shadow_of": {"answer": "free", "model": "sim/gpt-4o", "tier": "frontier"},
        "costs": [{"tier": "cheap", "model": "sim/gpt-4o-mini", "provider": "x", "cost_usd": -5.0}],
    }


# (task, queue, the arguments a forger sends, with a made-up or missing seal)
def forgeries(marker: str) -> list[tuple[str, str, list]]:
    def env(name: str) -> str:
        return json.dumps(forged_envelope(f"{marker}-{name}"))

    outcome = json.dumps({"status": "ok", "answer": "planted", "tier": "cheap"})
    return [
        (TASK_NAMES[Stage.cache], INGRESS, [env("ingress")]),
        (TASK_NAMES[Stage.cache], INGRESS, [env("ingress-sealed"), "0" * 64]),
        (TASK_NAMES[Stage.compress], COMPRESS, [env("compress")]),
        (TASK_NAMES[Stage.classify], CLASSIFY, [env("classify"), "f" * 64]),
        (TASK_NAMES[Stage.infer], infer_queue("cheap", "standard"), [env("infer")]),
        (TASK_NAMES[Stage.finalize], FINALIZE, [env("finalize"), outcome]),
        (TASK_NAMES[Stage.finalize], FINALIZE, [env("finalize-sealed"), outcome, "a" * 64]),
        (CACHE_STORE_TASK, INGRESS, [env("store"), outcome]),
    ]


def test_forged_internal_fields_are_dead_lettered_on_every_queue(fleet):
    marker = f"forge-{uuid.uuid4().hex[:8]}"
    sent = forgeries(marker)
    for task, queue, args in sent:
        step_id = json.loads(args[0])["step"]["step_id"]
        task_id = keys.result_id("acme", step_id) if queue == FINALIZE else None
        fleet.app.send_task(task, args=args, queue=queue, task_id=task_id, ignore_result=True)

    def letters():
        mine = [d.record for d in fleet.dead_letters() if marker in (d.record.raw or "")]
        return mine if len(mine) == len(sent) else None

    found = wait_for(letters)
    reasons = sorted(r.reason.split(":")[0] for r in found)
    # At ingress an unsealed message is read as a submission (a step, nothing else) and
    # refused for its extra fields; a sealed-looking one fails its seal like everywhere else.
    assert reasons.count("malformed submission") == 1
    assert reasons.count("forged or unsealed message for tierfleet.cache") == 1
    assert all("forged or unsealed" in r.reason for r in found if r.stage != "cache")
    assert not fleet.redis.exists("tf:xc:planted")
    assert not [e for e in fleet.ledger() if e.step_id.startswith(marker)]
    assert all(e.cost_usd >= 0 for e in fleet.ledger())


def test_a_forged_hop_cannot_overwrite_another_steps_result(fleet):
    [answered] = fleet.wait([fleet.submit(victim := make_step())], timeout=60)
    victim_id = keys.result_id("acme", victim.step_id)
    # A stage message sent under the victim's result id, asking Celery to store its result.
    for task, queue in [
        (TASK_NAMES[Stage.compress], COMPRESS),
        (TASK_NAMES[Stage.finalize], FINALIZE),
    ]:
        args = [json.dumps(forged_envelope(victim.step_id))]
        if queue == FINALIZE:
            args.append(json.dumps({"status": "dead_lettered", "reason": "overwritten"}))
        fleet.app.send_task(task, args=args, queue=queue, task_id=victim_id, ignore_result=False)
    wait_for(
        lambda: len([d for d in fleet.dead_letters() if d.record.step_id == victim.step_id]) == 2
    )
    time.sleep(0.3)
    [still] = fleet.wait([fleet.app.AsyncResult(victim_id)], timeout=5)
    assert still == answered


def test_names_that_share_a_plain_join_never_share_a_cached_answer(fleet):
    question = [
        {"role": "system", "content": "You are an airline agent."},
        {"role": "user", "content": f"Question {uuid.uuid4().hex}"},
    ]
    first = make_step(tenant="acme:x", agent="y", messages=question)
    [a] = fleet.wait([fleet.submit(first)], timeout=60)
    second = make_step(tenant="acme", agent="x:y", messages=question)
    [b] = fleet.wait([fleet.submit(second)], timeout=60)
    assert a.status is StepStatus.ok and b.status is StepStatus.ok
    assert not b.cache_hit and b.cost_usd > 0
    again = make_step(tenant="acme:x", agent="y", messages=question)  # the same scope: a hit
    [c] = fleet.wait([fleet.submit(again)], timeout=60)
    assert c.cache_hit and c.cached_from == first.step_id


def test_a_step_id_reused_by_another_tenant_keeps_both_results_and_ledger_entries(fleet):
    step_id = f"shared-{uuid.uuid4().hex[:8]}"
    mine = make_step(tenant="acme", step_id=step_id, labels={"difficulty": 0.1})
    theirs = make_step(tenant="globex", step_id=step_id, labels={"difficulty": 0.1})
    first, second = fleet.wait(fleet.submit_many([mine, theirs]), timeout=60)
    assert (first.tenant, second.tenant) == ("acme", "globex")
    assert first.answer != second.answer or first.decisions != second.decisions
    entries = [e for e in fleet.ledger() if e.step_id == step_id]
    assert sorted(e.tenant for e in entries) == ["acme", "globex"]
    assert fleet.app.AsyncResult(keys.result_id("acme", step_id)).get(timeout=5)["tenant"] == "acme"


def _picture(url: str) -> list[dict]:
    return [
        {"role": "system", "content": "You describe pictures."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        },
    ]


def test_requests_that_differ_only_in_their_image_get_their_own_answers(fleet):
    tag = uuid.uuid4().hex
    [cat] = fleet.wait([fleet.submit(make_step(messages=_picture(f"https://x/{tag}/cat.png")))])
    [dog] = fleet.wait([fleet.submit(make_step(messages=_picture(f"https://x/{tag}/dog.png")))])
    [cat2] = fleet.wait([fleet.submit(make_step(messages=_picture(f"https://x/{tag}/cat.png")))])
    assert cat.status is StepStatus.ok and not dog.cache_hit and dog.cost_usd > 0
    assert cat2.cache_hit and cat2.cached_from == cat.step_id


def test_an_image_counts_in_the_reservation(fleet):
    # 1,000 tokens hold the text of this step and its 512-token allowance, but not an image
    # too (the simulated models reserve 1,600 tokens for one).
    session = f"img-{uuid.uuid4().hex[:8]}"
    fleet.set_session_budget("acme", session, None, hard_tokens=1000)
    text_only = make_step(session_id=session, labels={"difficulty": 0.0})
    [ok] = fleet.wait([fleet.submit(text_only)], timeout=60)
    assert ok.status is StepStatus.ok
    pictured = make_step(session_id=session, messages=_picture(f"https://x/{uuid.uuid4().hex}"))
    [refused] = fleet.wait([fleet.submit(pictured)], timeout=60)
    assert refused.status is StepStatus.budget_exceeded
    assert "hard session budget refuses" in refused.reason


def nested_schema(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"x": schema}}
    return schema


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"response_schema": nested_schema(300)}, "field 'response_schema'"),
        ({"response_schema": nested_schema(MAX_SCHEMA_DEPTH + 1)}, "deeper than"),
        ({"tools": [{"type": "function", "parameters": nested_schema(300)}]}, "field 'tools'"),
        ({"messages": [{"role": "user", "content": "hi"}] * 3000}, "field 'messages'"),
        ({"tools": [{"type": "function", "name": f"t{i}"} for i in range(200)]}, "field 'tools'"),
        ({"messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}, "bytes as JSON"),
    ],
)
def test_oversized_and_over_deep_steps_are_refused_at_submit_with_the_field_named(
    fleet, fields, named
):
    step = {
        "tenant": "acme",
        "agent": "support",
        "session_id": "s-limits",
        "messages": [{"role": "user", "content": "q"}],
        **fields,
    }
    with pytest.raises(InvalidStep, match=named):
        fleet.submit(step)
