"""A calibrated confidence is what the cascade judges: an overconfident model's 0.95 that
is right half of the time does not clear a 0.7 bar."""

import json

from queues.topology import Stage
from workers.infer import handle_batch
from workers.ports import Completion
from workers.testing import FunctionProvider, envelope, infer_hops, make_runtime


def test_a_calibrated_confidence_is_judged_and_the_raw_one_recorded(tmp_path):
    path = tmp_path / "calibration.json"
    points = [[0.5, 0.1], [0.95, 0.5]]  # says 0.95, right half of the time
    path.write_text(json.dumps({"models": {"sim/gpt-4o-mini": points}}))
    provider = FunctionProvider(lambda r: Completion("fine", 100, 10, confidence=0.95))
    rt, bus, _ = make_runtime(provider, calibration_artifact=path)
    handle_batch(infer_hops(envelope(tier="cheap")), rt)
    [(stage, env, _)] = bus.sent
    assert stage is Stage.infer and env.tier == "mid"  # 0.50 < 0.70: escalated
    assert "confidence 0.50 < 0.70" in env.decisions[-1].why
    assert env.costs[0].confidence == 0.95  # the raw value, what calibration is fit on

    uncalibrated, bus2, _ = make_runtime(provider)
    handle_batch(infer_hops(envelope(tier="cheap")), uncalibrated)
    assert bus2.finalized and not bus2.sent  # raw 0.95 clears the bar
