"""`tierfleet demo` end to end, small: the whole fleet on embedded defaults, the report
beside the all-frontier baseline judged by the same checks, and the quality knob's curve."""

import pytest
from rich.console import Console

from producers.demo import demo_settings, demo_workload, run_demo
from queues.settings import Settings

pytestmark = pytest.mark.integration


def test_the_demo_reports_savings_quality_and_the_curve_of_the_quality_knob(tmp_path):
    console = Console(record=True, width=140)
    settings = demo_settings(Settings(simulated_latency_ms=0.0), None)
    summary = run_demo(settings, demo_workload(8, 7, None, 0), console, html=tmp_path / "r.html")
    assert summary["steps"] > 20 and summary["cost"] < summary["frontier_cost"]
    assert summary["quality"] is not None and summary["frontier_quality"] is not None
    points = summary["quality_curve"]
    assert [p["quality_knob"] for p in points] == [0.5, 0.6, 0.7, 0.8, 0.9]
    # Each point up the knob costs at least as much: quality is bought with savings.
    savings = [p["savings_pct"] for p in points]
    assert savings == sorted(savings, reverse=True) and savings[0] > savings[-1]
    text = console.export_text()
    assert "what each setting buys" in text and "0.70 (this run)" in text
    assert "apart from quality" in text
    assert (tmp_path / "r.html").read_text().count("<svg") >= 6
