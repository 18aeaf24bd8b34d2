"""The README's Python example runs as written against a real fleet."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_example_runs(local_fleet, monkeypatch, capsys):
    example = python_blocks()[0]
    monkeypatch.setenv("TIERFLEET_BROKER_URL", local_fleet.settings.broker_url)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("ok ") and "sim/" in printed


def test_the_readme_in_process_example_runs_without_redis():
    [example] = [b for b in python_blocks() if "InProcessFleet" in b]
    exec(compile(example, "README.md", "exec"), {})
