"""The folder the bundling container sees (layerkit.docker.staging): every declaration the alpha cannot read, and local
packages with the files the local build reads."""

from __future__ import annotations

import zipfile

import pytest

from layerkit.assemble.local_build import build_layer
from layerkit.core.targets import Target
from layerkit.docker.staging import stage
from layerkit.sources import SourceFolder
from tests.conftest import make_wheel
from tests.helpers import layer_folder, quiet


@pytest.mark.parametrize("tool", ["uv", "poetry", "pipenv"])
def test_the_docker_builder_is_handed_the_same_distributions(locked, tool, tmp_path):
    """PythonLayerVersion gets one requirements.txt (in _layerkit/, which the kit's hook installs): the lock's own
    pins and hashes, markers for the image's installer."""
    from packaging.requirements import Requirement

    project = getattr(locked, tool)
    for arch in ("x86_64", "arm64"):
        target = Target("python3.12", arch)
        build = build_layer(project, target, cache_dir=tmp_path / "cache", report=quiet)
        source = SourceFolder.layer(project)
        staged = stage(source, source.fingerprint(target, bytecode=True), tmp_path / "cache")
        lines = [line for line in (staged / "_layerkit" / "requirements.txt").read_text().splitlines()
                 if not line.startswith("-")]
        environment = {**target.marker_environment(), "extra": ""}
        pinned = sorted(
            f"{r.name}{r.specifier}" for r in (Requirement(line.split(" --hash")[0]) for line in lines)
            if r.marker is None or r.marker.evaluate(environment)
        )
        assert pinned == build.packages
        assert all("--hash=sha256:" in line for line in lines)
        assert sorted(p.name for p in staged.iterdir()) == sorted(["_layerkit", f"{project.name}.py"])


def test_what_pythonlayerversion_cannot_read_is_staged_where_the_container_sees_it(tmp_path):
    """Includes outside the folder are inlined; local wheels, path packages and find-links folders are copied
    into _layerkit/ (which the bundle drops), beside the one requirements.txt the image's installer reads there."""
    repo = tmp_path / "repo"
    layer_folder(repo / "shared" / "kitlib", {
        "pyproject.toml": '[build-system]\nrequires = ["flit_core>=3.9,<4"]\nbuild-backend = "flit_core.buildapi"\n\n'
                          '[project]\nname = "kitlib"\nversion = "0.1"\ndescription = "helpers"\n',
        "kitlib/__init__.py": '"""Shared helpers."""\n',
    })
    make_wheel(repo / "shared" / "wheelhouse", "kit-found", {"kit_found.py": ""})
    (repo / "shared" / "base.txt").write_text("--find-links wheelhouse\nkit-found==1.0\n")
    (repo / "shared" / "pins.txt").write_text("six==1.17.0\n")
    layer = layer_folder(repo / "layers" / "staged", {
        "python/mod.py": "",
        "requirements.txt": "-r ../../shared/base.txt\n-c ../../shared/pins.txt\nsix\n"
                            "./wheels/kit_local-1.0-py3-none-any.whl\n../../shared/kitlib ; python_version >= '3.12'\n",
    })
    make_wheel(layer / "wheels", "kit-local", {"kit_local.py": ""})
    source = SourceFolder.layer(layer)
    staged = stage(source, source.fingerprint(Target("python3.12", "x86_64"), bytecode=True), tmp_path / "cache")
    assert (staged / "_layerkit" / "requirements.txt").read_text() == (  # paths relative to it
        "--find-links ./find-links-0\n"
        "-c ./constraints.txt\n"
        "kit-found==1.0\n"
        "six\n"
        "./wheels/kit_local-1.0-py3-none-any.whl\n"
        './packages/kitlib ; python_version >= "3.12"\n'
    )
    assert (staged / "_layerkit" / "constraints.txt").read_text() == "six==1.17.0\n"
    assert (staged / "_layerkit" / "find-links-0" / "kit_found-1.0-py3-none-any.whl").is_file()
    assert (staged / "_layerkit" / "packages" / "kitlib" / "kitlib" / "__init__.py").is_file()
    assert sorted(p.name for p in staged.iterdir()) == ["_layerkit", "mod.py"]


def test_a_local_path_package_reaches_the_docker_builder_with_the_files_the_local_build_reads(tmp_path):
    """The Docker builder's copy of a local path package follows the kit's rules (never-deploy list, build
    output left out, links followed), so a package's .env or node_modules never reaches the bundling container."""
    repo = tmp_path / "repo"
    package = layer_folder(repo / "shared" / "kitlib", {
        "pyproject.toml": '[build-system]\nrequires = ["flit_core>=3.9,<4"]\nbuild-backend = "flit_core.buildapi"\n\n'
                          '[project]\nname = "kitlib"\nversion = "0.1"\ndescription = "helpers"\n',
        "kitlib/__init__.py": '"""Shared helpers."""\n',
        ".env": "DATABASE_PASSWORD=hunter2\n",
        "node_modules/left-pad/index.js": "module.exports = 1\n",
        "build/lib/kitlib/__init__.py": "stale = True\n",
        "kitlib.egg-info/PKG-INFO": "Name: kitlib\n",
    })
    (repo / "shared" / "common.py").write_text("SHARED = 1\n")
    (package / "kitlib" / "common.py").symlink_to(repo / "shared" / "common.py")
    layer = layer_folder(repo / "layers" / "staged", {"python/mod.py": "",
                                                      "requirements.txt": "../../shared/kitlib\n"})
    source = SourceFolder.layer(layer)
    staged = stage(source, source.fingerprint(Target("python3.12", "x86_64"), bytecode=True), tmp_path / "cache")
    copy = staged / "_layerkit" / "packages" / "kitlib"
    in_docker = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert in_docker == ["kitlib/__init__.py", "kitlib/common.py", "pyproject.toml"]
    # The modules the local build installs from the same package are the ones the container gets to build.
    local = build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", bytecode=False,
                        report=quiet)
    with zipfile.ZipFile(local.zip) as archive:
        installed = sorted(n.removeprefix("python/") for n in archive.namelist()
                           if n.startswith("python/kitlib/") and not n.endswith("/"))
    assert installed == [name for name in in_docker if name.startswith("kitlib/")]
    assert (copy / "kitlib" / "common.py").read_text() == "SHARED = 1\n"
    assert not (copy / "kitlib" / "common.py").is_symlink()
