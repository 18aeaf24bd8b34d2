"""The house's layering, checked on the imports themselves: queues import nothing of ours,
policies import only queues (and policies), workers never import producers."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"queues", "policies", "workers", "producers"}
ALLOWED = {
    "queues": {"queues"},
    "policies": {"queues", "policies"},
    "workers": {"queues", "policies", "workers"},
    "producers": OURS,
}


def imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_what_it_may(layer):
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported(path) - ALLOWED[layer])
        for path in (ROOT / layer).rglob("*.py")
        if imported(path) - ALLOWED[layer]
    }
    assert wrong == {}


MAX_LINES, MAX_FUNCTION_LINES = 300, 60


def test_no_module_over_300_lines_and_no_function_over_60():
    long_modules, long_functions = [], []
    for layer in sorted(OURS):
        for path in (ROOT / layer).rglob("*.py"):
            text = path.read_text()
            if text.count("\n") > MAX_LINES:
                long_modules.append(str(path.relative_to(ROOT)))
            functions = [
                node
                for node in ast.walk(ast.parse(text))
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            ]
            long_functions += [
                f"{path.relative_to(ROOT)}:{f.name}"
                for f in functions
                if (f.end_lineno or f.lineno) - f.lineno + 1 > MAX_FUNCTION_LINES
            ]
    assert long_modules == [] and long_functions == []
