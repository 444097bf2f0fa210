"""What of a folder may ship (layerkit.shipping.selection): the never-deploy list, excludes, links, special files, and
the user's folder never written."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

import layerkit
from layerkit.assemble.local_build import build_function, build_layer
from layerkit.core.errors import LayerSourceError
from layerkit.core.targets import Target
from tests.conftest import app_context, write
from tests.helpers import TARGET_312, assert_nothing_built, cli, copy_layer, names, one_line, quiet


# -- 2. one rule for links; only regular files and folders -----------------------------------------------------
@pytest.fixture
def monorepo(tmp_path):
    """A layer and a function that link shared code from elsewhere in a repository."""
    shared = write(tmp_path / "repo" / "shared", {"kit_shared/__init__.py": "WHO = 'shared'\n",
                                                  "settings.txt": "region = eu-west-1\n"})
    layer = write(tmp_path / "repo" / "layers" / "linked", {"python/own.py": "X = 1\n"})
    (layer / "python" / "kit_shared").symlink_to(shared / "kit_shared")
    (layer / "python" / "settings.txt").symlink_to(shared / "settings.txt")
    function = write(tmp_path / "repo" / "lambdas" / "fn", {"index.py": "import kit_shared\n\ndef handler(e, c):\n"
                                                                        "    return kit_shared.WHO\n"})
    (function / "kit_shared").symlink_to(shared / "kit_shared")
    return shared, layer, function


# -- 3. the never-deploy list, the same for layers and functions -----------------------------------------------
NEVER = {".env": "DB_PASSWORD=hunter2\n", ".env.local": "X=1\n", "venv/lib/site.py": "", "env/bin/activate": "",
         "ENV/x": "", ".venv/x": "", ".idea/workspace.xml": "", ".vscode/settings.json": "{}",
         "htmlcov/index.html": "", ".nox/x": "", ".tox/x": "", ".coverage": "", ".aws-sam/build.toml": "",
         ".gitignore": "*.pyc\n", ".git/HEAD": "ref: x\n", "pip-log.txt": "", "cdk.out/manifest.json": "{}",
         "node_modules/x/index.js": "", "pkg.egg-info/PKG-INFO": "", "__pycache__/x.cpython-312.pyc": "",
         ".pytest_cache/v": "", ".mypy_cache/x": "", ".DS_Store": "", "sub/.env": "SECRET=1\n"}


def test_bytecode_left_in_the_layer_folder_is_not_shipped_nor_hashed(tmp_path):
    layer = copy_layer("another_layer", tmp_path)
    target = Target("python3.12", "x86_64")
    clean = build_layer(layer, target, cache_dir=tmp_path / "cache")
    pycache = layer / "python" / "another_layer" / "__pycache__"
    pycache.mkdir()
    (pycache / "module1.cpython-311.pyc").write_bytes(b"\x00" * 16)
    dirty = build_layer(layer, target, cache_dir=tmp_path / "cache")
    assert (dirty.cache, dirty.asset_hash) == ("hit", clean.asset_hash)


def test_links_to_files_and_folders_are_followed_alike_and_warned_about_when_they_lead_outside(tmp_path, monorepo):
    shared, layer, function = monorepo
    reports: list[str] = []
    build = build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", report=reports.append, bytecode=False)
    assert names(build.zip) == ["python/kit_shared/__init__.py", "python/own.py", "python/settings.txt"]
    with zipfile.ZipFile(build.zip) as archive:
        assert archive.read("python/kit_shared/__init__.py") == b"WHO = 'shared'\n"
    outside = sorted(w for w in build.warnings if "outside the layer folder" in w)
    assert outside == [
        f"layer linked: python/kit_shared is a link to {shared / 'kit_shared'}, outside the layer folder: its files "
        "ship (as the CDK ships them); move them into the folder if that is not meant",
        f"layer linked: python/settings.txt is a link to {shared / 'settings.txt'}, outside the layer folder: its "
        "files ship (as the CDK ships them); move them into the folder if that is not meant",
    ]
    fn = build_function(function, TARGET_312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)
    assert names(fn.zip) == ["index.py", "kit_shared/__init__.py"]
    # Fingerprinted by what they reach: an edit of the shared code is a new asset.
    (shared / "kit_shared" / "__init__.py").write_text("WHO = 'edited'\n")
    assert build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", report=quiet,
                       bytecode=False).asset_hash != build.asset_hash


def test_a_link_inside_the_folder_ships_without_a_warning(tmp_path):
    layer = write(tmp_path / "aliased", {"python/real/__init__.py": "X = 1\n"})
    (layer / "python" / "alias").symlink_to("real")
    build = build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)
    assert names(build.zip) == ["python/alias/__init__.py", "python/real/__init__.py"]
    assert build.warnings == []


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: (p / "environ").symlink_to("/proc/self/environ"),
     r"python/environ is a link to /proc/self/environ \(/proc/\d+/environ\), a pseudo-file of this machine"),
    (lambda p: (p / "loop").symlink_to("."), r"python/loop is a link to \., a folder that holds the link itself"),
    (lambda p: (p / "gone").symlink_to("nowhere.py"), r"python/gone is a link to nowhere.py, which does not exist"),
    (lambda p: (p / "null").symlink_to("/dev/null"),
     r"python/null is a link to /dev/null \(/dev/null\), a pseudo-file"),
    (lambda p: os.mkfifo(p / "pipe"), r"python/pipe is a FIFO; only regular files and folders ship"),
], ids=["proc", "loop", "dangling", "device", "fifo"])
def test_anything_but_a_regular_file_or_folder_stops_the_build_naming_it(tmp_path, make, message):
    layer = write(tmp_path / "odd", {"python/mod.py": ""})
    make(layer / "python")
    with pytest.raises(LayerSourceError, match=message):
        build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", report=quiet)
    result = cli("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64", "--cache-dir",
                 str(tmp_path / "cache"))
    one_line(result)
    assert_nothing_built(tmp_path / "cache")


def test_what_never_deploys_from_a_function_folder(tmp_path):
    function = write(tmp_path / "fn", {"index.py": "def handler(e, c):\n    return 1\n", "lib/helpers.py": "",
                                       **NEVER})
    build = build_function(function, TARGET_312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False)
    assert names(build.zip) == ["index.py", "lib/helpers.py"]


def test_what_never_deploys_from_a_layer_and_what_it_excludes(tmp_path, kit_cache):
    layer = write(tmp_path / "layer", {**{f"python/{k}": v for k, v in NEVER.items()}, "python/mod.py": "",
                                       "python/README.md": "", "python/fixtures/big.json": "{}"})
    build = build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", report=quiet, bytecode=False,
                        excludes=("*.md", "fixtures"))
    assert names(build.zip) == ["python/mod.py"]
    stack = Stack(App(context=app_context()), "S")
    shared = layerkit.SharedPythonLayer(stack, "L", entry=layer, runtime=lambda_.Runtime.PYTHON_3_12,
                                        bytecode=False, asset_excludes=["*.md", "fixtures"])
    assert names(shared.code.content) == ["python/mod.py"]
    result = cli("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64", "--no-bytecode", "--json",
                 "--exclude", "*.md", "--exclude", "fixtures", "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    assert names(Path(json.loads(result.stdout)["zip"])) == ["python/mod.py"]


# -- 5. the user's folder is never written ---------------------------------------------------------------------
def test_a_function_folder_that_is_its_own_package_is_never_written_and_builds_the_same_twice(tmp_path):
    function = write(tmp_path / "fn", {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
                          '[project]\nname = "kit-fn"\nversion = "0.1"\n\n[tool.setuptools]\npackages = ["kit_fn"]\n',
        "kit_fn/__init__.py": "ANSWER = 42\n",
        "index.py": "from kit_fn import ANSWER\n\ndef handler(e, c):\n    return ANSWER\n",
        "requirements.txt": ".\n",
    })
    before = sorted(p.relative_to(function).as_posix() for p in function.rglob("*"))
    first = build_function(function, TARGET_312, cache_dir=tmp_path / "a", report=quiet)
    second = build_function(function, TARGET_312, cache_dir=tmp_path / "b", report=quiet)
    assert sorted(p.relative_to(function).as_posix() for p in function.rglob("*")) == before
    assert (first.sha256, first.asset_hash) == (second.sha256, second.asset_hash)
    assert "kit_fn-0.1.dist-info/METADATA" in names(first.zip)
