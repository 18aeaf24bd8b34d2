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


def test_every_file_the_where_things_are_table_names_exists():
    section = README.read_text().split("## Where things are")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    named = 0
    for row in rows:
        folder, _, contents = row.strip("|").split("|")
        base = README.parent / folder.strip().strip("`")
        assert base.is_dir(), folder
        for name in re.findall(r"`([\w./]+)`", contents):
            if name.endswith((".py", "/")):
                assert (base / name).exists() or (README.parent / name).exists(), name
                named += 1
    assert named > 60
