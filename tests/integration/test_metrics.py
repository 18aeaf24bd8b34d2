"""Prometheus metrics from real worker processes, read back with Prometheus' own text
parser: each worker group's /metrics, the prefork children's values included."""

import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from producers.fleet import Fleet
from producers.local.launcher import LocalFleet
from tests.integration.conftest import settings_for
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration


def scrape(url: str) -> dict[str, list]:
    """Every sample of an endpoint, by sample name."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def total(samples: dict[str, list], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples.get(name, [])
        if all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_every_worker_group_serves_its_metrics(local_fleet, fleet):
    tenant = f"m{uuid.uuid4().hex[:6]}"
    steps = [make_step(tenant=tenant, task_kind="lookup") for _ in range(5)]
    results = fleet.wait(fleet.submit_many(steps), timeout=60)
    assert all(r.status == "ok" for r in results)
    repeat = make_step(tenant=tenant, task_kind="lookup", messages=steps[0].messages)
    assert fleet.wait([fleet.submit(repeat)], timeout=60)[0].cache_hit

    urls = local_fleet.metrics_urls()
    assert {"cache", "compress", "classify", "finalize"} <= set(urls)
    final = scrape(urls["finalize"])
    assert total(final, "tierfleet_steps_total", tenant=tenant, status="ok") == 6
    assert total(final, "tierfleet_cache_lookups_total", layer="exact") >= 1
    # End to end latency is a histogram: Prometheus computes P95 from its buckets.
    buckets = [s for s in final["tierfleet_step_seconds_bucket"] if s.labels["status"] == "ok"]
    assert buckets and max(s.value for s in buckets if s.labels["le"] == "+Inf") >= 6
    assert total(final, "tierfleet_stage_seconds_count", stage="finalize") >= 6

    billed = 0.0
    for name, url in urls.items():
        samples = scrape(url)
        # Every group reports the depth and oldest age of the queues it drains.
        assert samples["tierfleet_queue_depth"], name
        assert total(samples, "tierfleet_scrape_ok") == 1, name
        billed += total(samples, "tierfleet_cost_usd_total", tenant=tenant)
        labels = {label for rows in samples.values() for s in rows for label in s.labels}
        assert not {"step_id", "session_id", "session"} & labels, name  # bounded labels
    fleet_cost = sum(r.cost_usd for r in results)
    assert billed == pytest.approx(fleet_cost, rel=1e-6)
    cache = scrape(urls["cache"])
    assert total(cache, "tierfleet_stage_seconds_count", stage="cache") >= 6


def test_prefork_children_are_counted_by_their_groups_endpoint(redis_server):
    settings = settings_for(redis_server, db=7)
    local = LocalFleet(settings)
    local.start(own_redis=False, pool="prefork")
    try:
        with Fleet(local.settings) as fleet:
            fleet.redis.flushdb()
            results = fleet.wait(fleet.submit_many([make_step() for _ in range(3)]), timeout=90)
        assert all(r.status == "ok" for r in results)
        assert local.pool_children("finalize")  # the work was done in a child process
        final = scrape(local.metrics_urls()["finalize"])
        assert total(final, "tierfleet_steps_total", status="ok") == 3
    finally:
        local.stop()
