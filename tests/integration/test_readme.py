"""The README's Python example runs as written against a real fleet."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_runs(local_fleet, monkeypatch, capsys):
    [example] = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    monkeypatch.setenv("TIERFLEET_BROKER_URL", local_fleet.settings.broker_url)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.startswith("ok ") and "sim/" in printed
