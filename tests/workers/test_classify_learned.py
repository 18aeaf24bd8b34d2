"""The classifier with the learned router: it loads the artifact and routes to a model."""

from dataclasses import replace

import pytest
from pydantic import ValidationError

from producers.training.router import save_router, train_router
from queues.messages import StepStatus
from queues.settings import Settings
from queues.topology import CLASSIFY, COMPRESS, INGRESS, TASK_NAMES, Stage
from tests.unit.test_learned_router import CHEAP, MID, TOP, outcome_table
from workers.classify import handle
from workers.configuration import configuration_problem
from workers.infer import handle_batch
from workers.ports import Completion
from workers.stage import run_stage
from workers.testing import TEST_SEALER, FunctionProvider, envelope, infer_hops, make_runtime
from workers.wiring import refuse_bad_configuration

TABLE_TOML = f"""
version = "test"
[tiers.cheap]
rank = 0
model = "{CHEAP}"
[tiers.mid]
rank = 1
model = "{MID}"
[tiers.frontier]
rank = 2
models = ["{TOP}"]
""" + "".join(
    f'[models."{m}"]\nprovider = "replay"\ninput_per_mtok = 1\noutput_per_mtok = 1\n'
    for m in (CHEAP, MID, TOP)
)


def test_learned_routing_picks_the_tier_and_model_and_inference_uses_it(tmp_path):
    pytest.importorskip("sklearn")
    table, artifact = tmp_path / "tiers.toml", tmp_path / "router.json"
    table.write_text(TABLE_TOML)
    save_router(train_router(outcome_table(), trained_on="synthetic"), artifact)
    provider = FunctionProvider(lambda r: Completion(r.model.name, 10, 2))
    rt, bus, _ = make_runtime(
        provider, tier_table=table, router="learned", router_artifact=artifact
    )
    step = {"role": "user", "content": "Translate the phrase number 4 into French, politely."}
    handle(envelope(messages=[step]), rt)
    [(stage, routed, _)] = bus.sent
    assert (stage, routed.tier, routed.model) == (Stage.infer, "mid", MID)
    assert "learned router" in routed.decisions[-1].why

    handle_batch(infer_hops(routed), rt)
    [(_, outcome)] = bus.finalized
    assert outcome.status is StepStatus.ok and outcome.model == MID


def test_learned_routing_without_an_artifact_fails_at_start_with_the_variable():
    with pytest.raises(ValidationError, match="TIERFLEET_ROUTER_ARTIFACT"):
        Settings(router="learned")


def test_an_unreadable_router_artifact_stops_the_classify_worker_at_boot(tmp_path):
    broken = tmp_path / "router.json"
    broken.write_text("{not json")
    settings = Settings(router="learned", router_artifact=broken)
    problem = configuration_problem(settings, {CLASSIFY})
    assert problem is not None and "cannot load the router artifact" in problem
    with pytest.raises(SystemExit, match="refuses to start"):
        refuse_bad_configuration(settings, {CLASSIFY})
    # Other stages do not load the router: their workers start.
    assert configuration_problem(settings, {INGRESS, COMPRESS}) is None


def test_a_runtime_built_with_unchecked_settings_still_dead_letters_with_the_variable():
    rt, bus, _ = make_runtime()
    rt = replace(rt, settings=rt.settings.model_copy(update={"router": "learned"}))
    raw = envelope().to_wire()
    seal = TEST_SEALER.sign(TASK_NAMES[Stage.classify], raw)
    run_stage(rt, "classify", raw, handle, seal=seal)
    [(_, outcome)] = bus.finalized
    assert outcome.status is StepStatus.dead_lettered
    assert "TIERFLEET_ROUTER_ARTIFACT" in (outcome.reason or "")
