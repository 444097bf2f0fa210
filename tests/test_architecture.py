"""The shape of the kit, enforced: one package per step of the data's way, each importing only the steps below it
(the import contract, run by import-linter), and no import inside a function but those that keep the command line
fast, each with its reason. See docs/architecture.md."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

KIT = ROOT / "layerkit"
#: The steps, bottom first, as pyproject.toml's contract lists them (top first) and docs/architecture.md explains.
STEPS = ["installed", "core", "rules", "shipping", "sources", "install", "assemble", "docker", "sharing",
         "constructs", "assembly", "checks", "invoke"]


def test_the_import_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "2 kept, 0 broken" in result.stdout


def test_the_contract_lists_every_step_and_the_kit_has_no_other_package():
    import tomllib

    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    listed = [layer.removeprefix("layerkit.") for layer in contract["layers"][1:]]
    assert list(reversed(listed)) == STEPS
    packages = sorted(p.name for p in KIT.iterdir() if (p / "__init__.py").is_file())
    assert packages == sorted(STEPS)
    flat = sorted(p.name for p in KIT.glob("*.py"))
    assert flat == ["__init__.py", "cli.py", "pytest_plugin.py"]


def _imports_inside_functions(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    found.append((node.lineno, module or ""))
    return sorted(set(found))


def _reason_of(lines: list[str], number: int) -> bool:
    """Whether the import at line ``number`` (1-based) carries ``# lazy:``, on its own line or on the comment or
    import lines right above it that it is grouped with (``import a  # lazy: ...`` then ``import b``)."""
    index = number - 1
    while index >= 0:
        line = lines[index].strip()
        if "# lazy:" in line:
            return True
        if index < number - 1 and not (line.startswith(("import ", "from ")) or line.startswith("#")):
            return False
        index -= 1
    return False


def test_every_import_inside_a_function_says_why_it_is_lazy():
    """An import inside a function is there to keep the command line (or pytest's start, for the plugin) fast, the
    CDK above all, which starts Node.js; never to dodge a cycle or an upward import: each carries
    ``# lazy: <reason>``."""
    missing = []
    for path in sorted(KIT.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, module in _imports_inside_functions(path):
            if not _reason_of(lines, number):
                missing.append(f"{path.relative_to(ROOT)}:{number} imports {module}")
    assert missing == []
