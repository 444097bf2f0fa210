""".pyc for the runtime (layerkit.install.bytecode): compiled by a Python of the target's version, never checked again
on Lambda, and what happens without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from layerkit.assemble.local_build import build_layer
from layerkit.core.targets import Target
from tests.conftest import LAYERS
from tests.helpers import cli


def hidden_python_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This environment, but one in which the kit finds no python3.12: no pyenv, none on PATH, none of uv's (and
    uv, asked to install one, cannot download it here). ``CI`` only where ``extra`` sets it."""
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    env.update({"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYENV_ROOT": str(tmp_path / "no-pyenv"),
                "UV_PYTHON_INSTALL_DIR": str(tmp_path / "no-uv-pythons"), **extra})
    return env


def build_with_python_hidden(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "layerkit.cli", "build", str(LAYERS / "another_layer"),
                           "--runtime", "python3.12", "--arch", "x86_64", "--json", "--cache-dir", str(tmp_path)],
                          capture_output=True, text=True, env=hidden_python_env(tmp_path, **extra), timeout=600)


def test_bytecode_is_for_the_target_python_and_never_rechecked(my_layer):
    with zipfile.ZipFile(my_layer.zip) as archive:
        pycs = [n for n in archive.namelist() if n.endswith(".pyc")]
        assert "python/__pycache__/my_layer.cpython-312.pyc" in pycs
        assert all(".cpython-312." in n for n in pycs), "bytecode of another Python shipped"
        header = archive.read("python/__pycache__/my_layer.cpython-312.pyc")[:16]
    # PEP 552 flags: 0b01 = hash-based, unchecked. A timestamp .pyc would be stale once the CDK CLI zips
    # every file with a 1980 date, and Lambda would compile the module again at every cold start.
    assert int.from_bytes(header[4:8], "little") == 0b01


def test_no_bytecode_when_asked(tmp_path):
    build = build_layer(LAYERS / "another_layer", Target("python3.12", "x86_64"), cache_dir=tmp_path,
                        bytecode=False)
    with zipfile.ZipFile(build.zip) as archive:
        assert not [n for n in archive.namelist() if n.endswith(".pyc")]
    with_pyc = build_layer(LAYERS / "another_layer", Target("python3.12", "x86_64"), cache_dir=tmp_path)
    assert with_pyc.asset_hash != build.asset_hash  # .pyc are content: another asset, never a stale one


def test_a_build_without_bytecode_never_says_it_compiled(tmp_path):
    result = cli("build", str(LAYERS / "my_layer"), "--runtime", "python3.12", "--arch", "x86_64", "--no-bytecode",
                 "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    summary = next(line for line in result.stderr.splitlines() if "installed with uv" in line)
    assert ", compressed in " in summary, summary
    assert "compil" not in result.stderr


def test_without_the_target_python_a_local_build_ships_source_only_and_names_the_asset_it_builds(tmp_path):
    proc = build_with_python_hidden(tmp_path, FORCE_COLOR="1")  # (as cdk synth runs an app: uv's why uncoloured)
    assert proc.returncode == 0, proc.stderr
    built = json.loads(proc.stdout)
    assert built["bytecode"] is False
    with_pyc = build_layer(LAYERS / "another_layer", Target("python3.12", "x86_64"), cache_dir=tmp_path / "with")
    warning = next(line for line in proc.stderr.splitlines() if "ships no .pyc" in line)
    assert warning.startswith("layerkit: warning: layer another_layer: no Python 3.12 here"), warning
    assert "'uv python install 3.12' could not install one" in warning  # asked, and the download was refused
    assert "\x1b[" not in proc.stderr
    assert f"under asset hash {built['asset_hash'][:12]} (with .pyc it is {with_pyc.asset_hash[:12]}" in warning
    assert "--no-bytecode on every machine" in warning


def test_in_ci_a_build_that_would_ship_without_pyc_for_want_of_python_stops_with_the_fix(tmp_path):
    proc = build_with_python_hidden(tmp_path, CI="true")
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("layerkit: no Python 3.12 here: asking")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("layerkit: error: layer another_layer: no Python 3.12 here"), lines[0]
    assert "in CI (CI is set) that would make another asset" in lines[0]
    assert "install Python 3.12 on the runner" in lines[0]
    assert "or set --no-bytecode on every machine" in lines[0]
    assert not list(tmp_path.glob("builds/*/*.zip"))  # nothing built under another asset hash


def test_a_file_that_does_not_compile_for_the_target_is_reported_and_ships_as_source(tmp_path):
    layer = tmp_path / "legacy"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "fine.py").write_text("X = 1\n")
    (layer / "python" / "legacy.py").write_text('print "a Python 2 module"\n')
    build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=lambda _: None)
    assert build.bytecode is True
    (warning,) = build.warnings
    assert warning.startswith("layer legacy: 1 file(s) do not compile for Python 3.12 and ship as source, compiled "
                              "again at each cold start (first: legacy.py: SyntaxError: Missing parentheses")
    with zipfile.ZipFile(build.zip) as archive:
        names = archive.namelist()
    assert {"python/legacy.py", "python/__pycache__/fine.cpython-312.pyc"} <= set(names)
    assert "python/__pycache__/legacy.cpython-312.pyc" not in names


def test_without_the_target_python_an_app_of_several_constructs_says_so_once(tmp_path):
    script = (
        "import layerkit\n"
        "from aws_cdk import App, Stack\n"
        "from aws_cdk import aws_lambda as lambda_\n"
        "app = App(context={'layerkit:builder': 'local'})\n"
        "stack = Stack(app, 'S')\n"
        "for name in ('my_layer', 'another_layer'):\n"
        f"    layerkit.SharedPythonLayer(stack, name, entry={str(LAYERS)!r} + '/' + name,\n"
        "                               runtime=lambda_.Runtime.PYTHON_3_12)\n"
    )
    env = hidden_python_env(tmp_path, LAYERKIT_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(LAYERS.parent))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "ships no .pyc" in line]
    assert len(warnings) == 1, warnings  # two layers, one reason: said once
