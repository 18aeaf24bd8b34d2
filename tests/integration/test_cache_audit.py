"""The semantic cache on by default, its bound kept by the deployment's own traffic: with no
trained verifier it scores by cosine at the prior threshold, would-be hits go to the top
tier's judge (all of a new deployment's first ones), and once the judged hits show the prior
serving wrong answers ("flights from Lisbon" for "flights to Lisbon", cosine 0.997) it stops
serving them. Real Redis, Celery workers as processes, MiniLM, the embedded Qdrant shard,
the simulated judge."""

import time

import pytest
from typer.testing import CliRunner

from policies.caching import normalize_text
from producers.cli.main import app
from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from producers.training.pairs import read_pairs
from queues.messages import StepStatus
from queues.settings import Settings
from tests.integration.conftest import settings_for, wait_for
from tests.integration.test_metrics import scrape, total
from workers.cache import MISS_BELOW

pytestmark = pytest.mark.integration

ASKED = "What is the baggage allowance on flights to Lisbon?"
SAME = "On flights to Lisbon, what is the baggage allowance?"  # cosine 0.990, the same words
OTHER = "What is the baggage allowance on flights from Lisbon?"  # 0.997, another question
PRIOR = 0.98  # a prior both clear


def ask(text: str) -> dict:
    return {
        "tenant": "t1",
        "agent": "travel",
        "session_id": f"s-{time.monotonic_ns()}",
        "messages": [
            {"role": "system", "content": "You are a travel assistant."},
            {"role": "user", "content": text},
        ],
    }


def test_judged_wrong_hits_stop_the_default_semantic_cache(redis_server, tmp_path, monkeypatch):
    defaults = Settings()
    assert defaults.semantic_cache and defaults.cache_verifier is None  # on, with no verifier
    settings = settings_for(
        redis_server,
        db=6,
        semantic_cache=True,
        semantic_prior_threshold=PRIOR,
        semantic_audit_refresh_s=0.2,
    )
    with Fleet(settings) as fleet:
        fleet.redis.flushdb()
        local = LocalFleet(settings).start(own_redis=False)
        try:

            def run(text: str):
                (result,) = fleet.wait(fleet.submit_many([ask(text)]), timeout=60)
                assert result.status is StepStatus.ok, result.reason
                return result

            first = run(ASKED)
            fleet.invalidate_cache("pv-nothing-here")  # queued behind its store: stored now
            served = [run(SAME), run(OTHER)]  # asked before any verdict is in
            assert all(r.cache_hit and r.cached_from == first.step_id for r in served)
            assert all(r.semantic.threshold == PRIOR for r in served)

            def judged():
                records, _ = fleet.cache_audits()
                return records if len(records) == 2 else None

            records = wait_for(judged, timeout=60)
            verdicts = {r.question: r.same for r in records}
            assert verdicts == {normalize_text(SAME): True, normalize_text(OTHER): False}
            assert all(r.served and r.judge_model == "sim/gpt-4o" for r in records)
            assert all(r.cost_usd > 0 for r in records)

            # One of two served hits wrong: the prior is dropped, even for the same words.
            time.sleep(settings.semantic_audit_refresh_s + 0.3)
            again = run("What is the baggage allowance, on flights to Lisbon?")
            assert not again.cache_hit
            assert any(d.why == MISS_BELOW for d in again.decisions)
            _, bounds = fleet.cache_audits()
            [bound] = bounds.values()
            assert bound["source"] == "suspended" and bound["threshold"] is None
            # Each judge's call is on the bill (and the step not served is judged as well).
            audit_calls = [c for c in fleet.calls() if c.get("audit") and "cost_usd" in c]
            assert len(audit_calls) >= 2

            # What Prometheus sees: the cache worker's served threshold, +Inf while suspended.
            metrics = scrape(local.metrics_urls()["cache"])
            [threshold] = metrics["tierfleet_semantic_threshold"]
            assert threshold.labels["source"] == "suspended" and threshold.value == float("inf")
            judge = scrape(local.metrics_urls()["infer-frontier"])  # where verdicts land
            assert total(judge, "tierfleet_cache_audits_total", verdict="wrong") >= 1
            assert total(judge, "tierfleet_cache_audits_total", verdict="right") >= 1

            # The operator's view, and the judged pairs as a verifier's training data.
            monkeypatch.setenv("TIERFLEET_BROKER_URL", settings.broker_url)
            judged_file = tmp_path / "judged.jsonl"
            shown = CliRunner().invoke(app, ["cache", "audit", "--out", str(judged_file)])
            assert shown.exit_code == 0, shown.output
            assert "served hits judged wrong: 1 of 2" in shown.output
            assert "suspended" in shown.output and "none served" in shown.output
            assert {(p.a, p.label) for p in read_pairs(judged_file)} >= {
                (normalize_text(SAME), 1),
                (normalize_text(OTHER), 0),
            }
        finally:
            local.stop()
