"""A real Prometheus scraping a real fleet: it reads every worker group's /metrics, the
shipped alert rules load and evaluate, and every query of the Grafana board runs."""

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from producers.local.launcher import free_port
from tests.integration.conftest import wait_for
from tests.integration.test_step_path import make_step

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")


def query(base: str, expr: str) -> dict:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


@pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (Debian: prometheus)")
def test_prometheus_scrapes_the_fleet_and_evaluates_the_rules(local_fleet, fleet, tmp_path):
    targets = [url.split("//")[1].split("/")[0] for url in local_fleet.metrics_urls().values()]
    shutil.copy(ROOT / "monitoring" / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "alerts.yml")],
        "scrape_configs": [
            {"job_name": "tierfleet-workers", "static_configs": [{"targets": targets}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    server = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        results = fleet.wait(fleet.submit_many([make_step() for _ in range(5)]), timeout=60)
        assert all(r.status == "ok" for r in results)

        def scraped():
            up = query(base, "sum(up)")["data"]["result"]
            steps = query(base, "sum(tierfleet_steps_total)")["data"]["result"]
            return up and float(up[0]["value"][1]) == len(targets) and steps

        steps = wait_for(lambda: _quietly(scraped), timeout=60)
        assert float(steps[0]["value"][1]) >= 5

        def rules_evaluated():
            with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=10) as reply:
                groups = json.loads(reply.read())["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return (
                rules
                if rules
                and all(
                    r.get("lastEvaluation", "").startswith("2") and r["health"] != "unknown"
                    for r in rules
                )
                else None
            )

        rules = wait_for(lambda: _quietly(rules_evaluated), timeout=60)
        assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]

        board = json.loads((ROOT / "monitoring/grafana/dashboards/tierfleet.json").read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                assert query(base, target["expr"])["status"] == "success", panel["title"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _quietly(check):
    try:
        return check()
    except OSError:  # Prometheus still starting
        return None
