"""The compose monitoring stack's files: Prometheus scrapes every worker group and Flower
and loads the rules; the Grafana dashboard fits its schema and asks only for metrics the
workers export; Grafana and Prometheus are closed to strangers."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from policies.tables import DEFAULT_TIER_TABLE
from policies.tiers import load_tier_table
from queues.topology import worker_groups
from workers.metrics import FleetMetrics
from workers.metrics_export import FleetCollector

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
PROMETHEUS = MONITORING / "prometheus" / "prometheus.yml"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "tierfleet.json"
DATASOURCE = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"

# The part of Grafana's dashboard model (schemaVersion 39) the board relies on: what Grafana
# needs to load it and draw each panel from the provisioned Prometheus.
TARGET = {
    "type": "object",
    "required": ["refId", "expr", "datasource"],
    "properties": {"refId": {"type": "string", "pattern": "^[A-Z]$"}, "expr": {"type": "string"}},
}
PANEL = {
    "type": "object",
    "required": ["id", "type", "title", "gridPos", "targets", "datasource"],
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "type": {"enum": ["timeseries", "stat", "gauge", "table", "barchart", "piechart"]},
        "title": {"type": "string", "minLength": 1},
        "gridPos": {
            "type": "object",
            "required": ["h", "w", "x", "y"],
            "properties": {
                "h": {"type": "integer", "minimum": 1},
                "w": {"type": "integer", "minimum": 1, "maximum": 24},
                "x": {"type": "integer", "minimum": 0, "maximum": 23},
                "y": {"type": "integer", "minimum": 0},
            },
        },
        "targets": {"type": "array", "minItems": 1, "items": TARGET},
        "datasource": {
            "type": "object",
            "required": ["type", "uid"],
            "properties": {"type": {"const": "prometheus"}},
        },
    },
}
DASHBOARD_SCHEMA = {
    "type": "object",
    "required": ["uid", "title", "schemaVersion", "panels", "time"],
    "properties": {
        "uid": {"type": "string", "maxLength": 40},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "panels": {"type": "array", "minItems": 1, "items": PANEL},
    },
}


class NoStore:
    def hmget(self, *_):
        return [None, None]

    def hgetall(self, *_):
        return {b"cosine": b'{"threshold": null, "source": "suspended", "upper": 0.6}'}


class NoQueues:
    def measure(self, queue, now):
        return 0, None


class NoJobs:
    def jobs(self):
        return []

    def pending(self, model):
        return 0


def exported_names() -> set[str]:
    """Every sample name a worker group's /metrics can show."""
    names = set()
    for family in FleetMetrics().registry.collect():
        kind = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        names |= {family.name + s for s in kind.get(family.type, [""])}
    collector = FleetCollector(NoQueues(), ["q"], NoStore(), ["p"], NoJobs(), ["m"], semantic=True)
    names |= {family.name for family in collector.collect()}
    return names


def test_the_semantic_caches_served_threshold_is_read_at_each_scrape():
    collector = FleetCollector(NoQueues(), [], NoStore(), [], None, semantic=True)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collector.collect()
        for s in family.samples
    }
    key = (("scorer", "cosine"), ("source", "suspended"))
    assert samples[("tierfleet_semantic_threshold", key)] == float("inf")
    assert samples[("tierfleet_semantic_wrong_hit_bound", (("scorer", "cosine"),))] == 0.6
    assert samples[("tierfleet_scrape_ok", ())] == 1.0


def test_the_dashboard_fits_its_schema_and_reads_only_exported_metrics():
    board = json.loads(DASHBOARD.read_text())
    jsonschema.validate(board, DASHBOARD_SCHEMA)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    uid = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]["uid"]
    exported = exported_names()
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for wanted in (
        "cost per hour by model",
        "tenant",
        "savings",
        "p95",
        "cache hit",
        "escalation",
        "queue depth",
    ):
        assert wanted in titles
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == uid
        for target in panel["targets"]:
            used = set(re.findall(r"\btierfleet_[a-z_]+", target["expr"]))
            assert used and used <= exported, (panel["title"], used - exported)


def test_the_alert_rules_read_only_exported_metrics():
    rules = yaml.safe_load((MONITORING / "prometheus" / "alerts.yml").read_text())
    exported = exported_names()
    for rule in rules["groups"][0]["rules"]:
        used = set(re.findall(r"\btierfleet_[a-z_]+", rule["expr"]))
        assert used and used <= exported, (rule["alert"], used - exported)


def test_prometheus_scrapes_every_worker_group_and_flower():
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    scraped = set(jobs["tierfleet-workers"]["dns_sd_configs"][0]["names"])
    table = load_tier_table(DEFAULT_TIER_TABLE)
    groups = {g.name for g in worker_groups(table.names, 16)}
    assert groups <= scraped
    assert jobs["tierfleet-workers"]["dns_sd_configs"][0]["port"] == 9808
    assert jobs["flower"]["static_configs"][0]["targets"] == ["flower:5555"]
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert scraped - {"infer-cheap-cpu", "infer-cheap-gpu"} <= set(services)
    assert services["cache"]["environment"]["TIERFLEET_METRICS_PORT"] == "9808"


def test_prometheus_and_grafana_are_on_loopback_and_grafana_asks_for_a_password():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"]), name
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    mounts = " ".join(services["prometheus"]["volumes"])
    assert "alerts.yml:/etc/prometheus/alerts.yml" in mounts


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_prometheus_config(tmp_path):
    config = yaml.safe_load(PROMETHEUS.read_text())
    shutil.copy(MONITORING / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    config["rule_files"] = [str(tmp_path / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
