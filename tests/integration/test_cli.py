"""The CLI against the running test fleet: write a workload, run it, report, list dead letters."""

import json

import pytest
from typer.testing import CliRunner

from policies.tables import DEFAULT_TIER_TABLE
from producers.cli.main import app

pytestmark = pytest.mark.integration


def test_workload_run_report_and_dead_list(local_fleet, tmp_path, monkeypatch):
    monkeypatch.setenv("TIERFLEET_BROKER_URL", local_fleet.settings.broker_url)
    runner = CliRunner()
    workload = tmp_path / "w.jsonl"
    assert (
        runner.invoke(app, ["workload", str(workload), "--sessions", "6", "--seed", "3"]).exit_code
        == 0
    )
    lines = workload.read_text().splitlines()
    assert len(lines) >= 12 and json.loads(lines[0])["tenant"] in ("acme", "globex")

    ran = runner.invoke(app, ["run", str(workload), "--out", str(tmp_path / "run.json")])
    assert ran.exit_code == 0, ran.output
    figures = json.loads((tmp_path / "run.json").read_text())
    assert figures["steps"] == len(lines) and figures["cost"] > 0 and figures["simulated"]

    page = tmp_path / "report.html"
    reported = runner.invoke(
        app, ["report", "--out", str(tmp_path / "report.json"), "--html", str(page)]
    )
    assert reported.exit_code == 0 and "cost by tenant" in reported.output
    assert "cost by task kind" in reported.output and "latency per lane" in reported.output
    assert "savings by lever" in reported.output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["steps"] >= len(lines) and report["facts"]["frontier_usd"] > report["cost"]
    assert page.read_text().count("<svg") >= 6

    alerts = runner.invoke(app, ["alerts"])
    assert alerts.exit_code == 0 and "alerts firing now" in alerts.output
    batch = runner.invoke(app, ["batch"])
    assert batch.exit_code == 0 and "batch jobs" in batch.output

    calibration = tmp_path / "calibration.json"
    trained = runner.invoke(app, ["train", "calibration", "--out", str(calibration)])
    assert trained.exit_code == 0 and "recorded outcomes" in trained.output, trained.output
    assert json.loads(calibration.read_text())["outcomes"]  # labelled simulated steps

    dead = runner.invoke(app, ["dead", "list"])
    assert dead.exit_code == 0 and "tf.dead" in dead.output


def test_run_names_the_bad_line_of_a_workload(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"tenant": "a", "agent": "b", "session_id": "c", "messages": []}\n')
    result = CliRunner().invoke(app, ["run", str(bad)])
    assert result.exit_code == 2
    assert "cannot read the workload" in result.output and "bad.jsonl:1" in result.output
    assert "messages" in result.output


def test_an_embedded_fleet_without_its_providers_keys_refuses_to_start(tmp_path, monkeypatch):
    for var in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "TIERFLEET_OPENAI_API_KEY",
        "TIERFLEET_ANTHROPIC_API_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TIERFLEET_TIER_TABLE", str(DEFAULT_TIER_TABLE.with_name("providers.toml")))
    workload = tmp_path / "w.jsonl"
    CliRunner().invoke(app, ["workload", str(workload), "--sessions", "1"])
    result = CliRunner().invoke(app, ["run", str(workload), "--embedded"])
    assert result.exit_code == 2
    assert "TIERFLEET_OPENAI_API_KEY" in result.output
    assert "TIERFLEET_ANTHROPIC_API_KEY" in result.output
