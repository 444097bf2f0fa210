"""Lock files (uv.lock, poetry.lock, Pipfile.lock) and pyproject.toml (layerkit.sources): exactly the locked versions
for the target, a stale lock refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import (
    DeclarationError,
)
from layerkit.core.targets import Target
from tests.conftest import extract, run_isolated
from tests.helpers import (
    LOCKED,
    assert_nothing_built,
    copy_project,
    elf_machine,
    layer_folder,
    one_line_cli_error,
    quiet,
)
from tests.lock_projects import LOCKED_ORJSON, NEWER_ORJSON


def names_in(build) -> list[str]:
    with zipfile.ZipFile(build.zip) as archive:
        return archive.namelist()


# -- 8. lock freshness as the lock's own tool decides it -------------------------------------------------------
UV_PROJECTS = {  # pyproject.toml tables beside [project]; each is locked by uv, then maybe edited
    "plain": "",
    "legacy-dev-dependencies-empty": "[tool.uv]\ndev-dependencies = []\n",
    "legacy-dev-dependencies": '[tool.uv]\ndev-dependencies = ["kit-devtool==1.0"]\n',
    "legacy-and-groups": '[dependency-groups]\ndev = ["six==1.17.0"]\n\n[tool.uv]\ndev-dependencies = '
                         '["kit-devtool==1.0"]\n',
    "extras": '[project.optional-dependencies]\ncli = ["kit-devtool==1.0; sys_platform == \'linux\'"]\n',
    "constraints": '[tool.uv]\nconstraint-dependencies = ["six<2"]\n',
}


EDITS = {  # (case, edit of pyproject.toml after locking)
    "fresh": lambda text: text,
    "dependency": lambda text: text.replace('"python-dateutil<3"', '"python-dateutil<2.10"'),
    "dev": lambda text: text.replace('"kit-devtool==1.0"', '"kit-devtool>=1.0"'),
    "extra-added": lambda text: text + '\n[project.optional-dependencies]\nextra = ["six==1.17.0"]\n'
    if "[project.optional-dependencies]" not in text else text.replace("cli = [", "cli = [\"six==1.17.0\", "),
    "constraint": lambda text: text.replace('"six<2"', '"six<3"'),
}


# -- lock files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
@pytest.mark.parametrize("tool", ["uv", "poetry", "pipenv"])
def test_a_locked_layer_holds_exactly_the_locked_versions_for_the_target(locked, tool, arch, tmp_path):
    project = getattr(locked, tool)
    build = build_layer(project, Target("python3.12", arch), cache_dir=tmp_path / "cache", report=quiet)
    # The index now offers orjson 3.10.18: the lock's 3.10.16 is installed, never a fresh resolution. The dev
    # group's kit-devtool is not; kit-armonly is, on arm64 only, whatever this machine is.
    expected = sorted([*LOCKED, *(["kit-armonly==1.0"] if arch == "arm64" else [])])
    assert build.packages == expected
    names = names_in(build)
    assert f"python/orjson-{LOCKED_ORJSON}.dist-info/METADATA" in names
    assert not [n for n in names if "kit_devtool" in n or n.startswith("python/bin/")]
    with zipfile.ZipFile(build.zip) as archive:
        shared_objects = [n for n in names if n.endswith(".so")]
        assert shared_objects
        for name in shared_objects:
            assert ".cpython-312-" in name, name
            assert elf_machine(archive.read(name)) == arch, name


def test_a_locked_layer_imports_under_the_runtime_python(locked, tmp_path, python312):
    build = build_layer(locked.uv, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    root = extract(build.zip, tmp_path / "layer")
    code, out, err = run_isolated(python312, "import orjson, uv_layer, dateutil\nprint(orjson.__version__, "
                                             "uv_layer.dumps({'a': 1}).decode())", root / "python")
    assert code == 0, err
    assert out.split() == [LOCKED_ORJSON, '{"a":1}']


@pytest.mark.parametrize(("tool", "edited", "fix"), [
    ("uv", "pyproject.toml", "run 'uv lock' in that folder"),
    ("poetry", "pyproject.toml", "run 'poetry lock' in that folder"),
    ("pipenv", "Pipfile", "run 'pipenv lock' in that folder"),
])
def test_a_lock_out_of_date_with_its_project_is_refused_with_the_command_that_refreshes_it(
        locked, tool, edited, fix, tmp_path):
    project = copy_project(getattr(locked, tool), tmp_path)
    text = (project / edited).read_text()
    (project / edited).write_text(text.replace("python-dateutil", "python-slugify").replace(
        '"python-slugify<3"', '"python-slugify<9"'))
    with pytest.raises(DeclarationError, match="out of date with") as error:
        build_layer(project, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert fix in str(error.value)
    message = one_line_cli_error(project, tmp_path / "cache")
    lock = {"uv": "uv.lock", "poetry": "poetry.lock", "pipenv": "Pipfile.lock"}[tool]
    assert fix in message
    assert message.endswith(f"and commit the new {lock}")
    assert_nothing_built(tmp_path / "cache")


def test_a_pyproject_without_a_lock_is_resolved_for_the_target_with_the_unpinned_warning(locked, tmp_path):
    layer = layer_folder(tmp_path / "pep621", {"pyproject.toml": f"""
[project]
name = "pep621"
version = "0"
dependencies = ["orjson<3.11"]

[tool.uv]
index-url = "{locked.index.url()}"
"""})
    # uv's [tool.uv] settings are not read by the kit: the index comes from the environment here.
    env = {"UV_INDEX_URL": locked.index.url()}
    os.environ.update(env)
    try:
        build = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    finally:
        for key in env:
            os.environ.pop(key)
    assert build.packages == [f"orjson=={NEWER_ORJSON}"]
    assert build.warnings == [
        "layer pep621: requirement 'orjson<3.11' is not pinned to one version (pyproject.toml [project] dependencies); "
        "pin it (e.g. 'name==1.2.3') or lock it, so that every build installs the same code"
    ]


def test_the_cli_reports_the_packages_of_a_lock_as_json(locked, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "layerkit.cli", "build", str(locked.pipenv), "--runtime",
                           "python3.12", "--arch", "arm64", "--json", "--cache-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["packages"] == sorted([*LOCKED, "kit-armonly==1.0"])


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("project", list(UV_PROJECTS))
def test_the_kits_lock_check_agrees_with_uv_lock_check(locked, tmp_path, project, edit, python312):
    from layerkit.core import uv
    from layerkit.core.errors import DeclarationError
    from layerkit.sources.uvlock import check_fresh

    folder = tmp_path / project
    folder.mkdir()
    pyproject = folder / "pyproject.toml"
    pyproject.write_text('[project]\nname = "kit-lock"\nversion = "0"\nrequires-python = ">=3.12"\n'
                         'dependencies = ["python-dateutil<3"]\n\n' + UV_PROJECTS[project])
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    command = [uv.binary(), "lock", "--default-index", locked.index.url(), "--python", str(python312), "--quiet"]
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    pyproject.write_text(EDITS[edit](pyproject.read_text()))
    uv_says_fresh = subprocess.run([*command, "--check", "--offline"], cwd=folder, env=env,
                                   capture_output=True).returncode == 0
    try:
        check_fresh(folder / "uv.lock", pyproject)
        kit_says_fresh = True
    except DeclarationError:
        kit_says_fresh = False
    assert kit_says_fresh == uv_says_fresh, f"uv lock --check says {'fresh' if uv_says_fresh else 'stale'}"
