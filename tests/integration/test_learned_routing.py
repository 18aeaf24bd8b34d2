"""The learned router through the real fleet: trained on a small generated outcome table,
it sends easy steps to the cheap model that suffices and hard ones to the frontier, and the
cascade still escalates an answer that fails its checks up to the frontier tier."""

import random
from collections import Counter

import pytest

from producers.bench.routing_replay import write_test_csv
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.training.router import save_router, train_router
from queues.messages import StepStatus
from tests.integration.conftest import settings_for
from workers.providers.replay import Recorded, ReplayRow

pytestmark = pytest.mark.integration

CHEAP, MID, TOP = "cheap-7b", "mid-70b", "frontier-xl"
COST = {CHEAP: 0.0001, MID: 0.0005, TOP: 0.005}
CODE = "def solve(xs):\n    return sorted(xs)\n"
KINDS = {  # prompt template, task kind, who is right, what each answers
    "add": ("What is {a} plus {b}? Answer with the number.", "chat"),
    "proof": ("Prove that the series {a} over {b} converges, rigorously.", "reason"),
    "code": ("Write a python function that sorts list number {a}.", "code"),
}


def outcomes(kind: str, rng: random.Random) -> dict[str, Recorded]:
    if kind == "add":
        return {m: Recorded("42", True, COST[m]) for m in COST}
    if kind == "proof":
        return {m: Recorded("proof" if m == TOP else "unsure", m == TOP, COST[m]) for m in COST}
    # Code: the small models usually write it; when they do not, their answer has no function.
    small_right = rng.random() < 0.75
    small = CODE if small_right else "I cannot write that."
    return {
        CHEAP: Recorded(small, small_right, COST[CHEAP]),
        MID: Recorded(small, small_right, COST[MID]),
        TOP: Recorded(CODE, True, COST[TOP]),
    }


def table(n: int, seed: int) -> list[ReplayRow]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind = list(KINDS)[i % 3]
        prompt = KINDS[kind][0].format(a=rng.randint(1, 999), b=rng.randint(1, 999))
        rows.append(ReplayRow(f"{kind}-{seed}-{i}", prompt, kind, outcomes(kind, rng)))
    return rows


TIERS = "".join(
    f'[tiers.{tier}]\nrank = {rank}\nmodel = "{model}"\n'
    for rank, (tier, model) in enumerate([("cheap", CHEAP), ("mid", MID), ("frontier", TOP)])
) + "".join(
    f'[models."{m}"]\nprovider = "replay"\ninput_per_mtok = 1\noutput_per_mtok = 1\n' for m in COST
)


def test_the_learned_router_in_the_fleet(redis_server, tmp_path):
    pytest.importorskip("sklearn")
    (tmp_path / "tiers.toml").write_text('version = "test"\n' + TIERS)
    save_router(train_router(table(240, seed=1), trained_on="generated"), tmp_path / "r.json")
    test_rows = table(45, seed=2)
    write_test_csv(test_rows, tmp_path / "test.csv")
    settings = settings_for(
        redis_server,
        db=5,
        tier_table=tmp_path / "tiers.toml",
        replay_data=tmp_path / "test.csv",
        router="learned",
        router_artifact=tmp_path / "r.json",
        router_target=0.6,
    )
    steps = [
        {
            "tenant": "t",
            "agent": "a",
            "session_id": row.sample_id,
            "task_kind": KINDS[row.eval_name][1],
            "messages": [{"role": "user", "content": row.prompt}],
            "labels": {"replay_id": row.sample_id},
        }
        for row in test_rows
    ]
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local = LocalFleet(settings).start(own_redis=False)
        try:
            results = fleet.wait(fleet.submit_many(steps), timeout=120)
        finally:
            local.stop()
    by_kind: dict[str, list] = {k: [] for k in KINDS}
    for row, result in zip(test_rows, results, strict=True):
        assert result.status is StepStatus.ok, result.reason
        by_kind[row.eval_name].append(result)

    assert {(r.model, r.escalations) for r in by_kind["add"]} == {(CHEAP, 0)}
    assert {(r.model, r.escalations) for r in by_kind["proof"]} == {(TOP, 0)}
    code = Counter((r.model, r.escalations) for r in by_kind["code"])
    assert code[(CHEAP, 0)] > 0  # most code goes to the cheap model and passes the check
    assert code[(TOP, 2)] > 0  # a failed check climbs every tier to the frontier
    assert set(code) <= {(CHEAP, 0), (TOP, 2)}
    escalated = next(r for r in by_kind["code"] if r.escalations == 2)
    assert escalated.cost_usd == pytest.approx(sum(COST.values()))  # every attempt is paid


def test_a_classify_worker_with_an_unreadable_router_artifact_refuses_to_start(
    redis_server, tmp_path
):
    broken = tmp_path / "router.json"
    broken.write_text("{not json")
    settings = settings_for(redis_server, db=5, router="learned", router_artifact=broken)
    local = LocalFleet(settings)
    classify = [g for g in local.groups() if g.name == "classify"]
    try:
        with pytest.raises(RuntimeError, match="worker classify exited"):
            local.start_groups(classify, timeout_s=60)
    finally:
        local.stop()
    log = (local.log_dir / "classify.log").read_text()
    assert "refuses to start" in log and "cannot load the router artifact" in log
