"""Shared fixtures: an isolated layer cache, the example app synthesized once, built layers."""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import layerkit  # noqa: F401  (first: quiets the jsii Node.js banner before aws_cdk starts Node)

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ROOT / "layers"


@pytest.fixture(scope="session")
def kit_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A layerkit cache of this test session only, so no test trusts a build made outside it."""
    cache = tmp_path_factory.mktemp("layerkit-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAYERKIT_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture(scope="session")
def example(kit_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    """The example app, built without Docker, synthesized once for the session."""
    from aws_cdk import App

    from app import build

    outdir = tmp_path_factory.mktemp("cdk.out")
    example = build(App(outdir=str(outdir), context={"layerkit:builder": "local"}))
    example.app.synth()
    return example


@pytest.fixture(scope="session")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Three layer folders locked by uv, poetry and pipenv against the tests' own index (see lock_projects)."""
    from tests.lock_projects import LOCKED_ORJSON, NEWER_ORJSON, downloads, lock_all, publish
    from tests.package_index import PackageIndex, fill_wheelhouse

    work = tmp_path_factory.mktemp("locked")
    wheels = work / "wheels"
    publish(wheels, [f"orjson=={LOCKED_ORJSON}", "python-dateutil==2.9.0.post0", "six==1.17.0"])
    make_wheel(wheels, "kit-armonly", {"kit_armonly.py": "ARM = True\n"})
    make_wheel(wheels, "kit-devtool", {"kit_devtool.py": "DEV = True\n"})
    index = PackageIndex(wheels)
    projects = lock_all(work, index, wheels)
    publish(wheels, [f"orjson=={NEWER_ORJSON}"])  # a fresh resolution would now pick this one
    # What a laptop's `pip install -t python/` with Python 3.11 gets (a test installs it by hand).
    fill_wheelhouse(wheels, [f"orjson=={LOCKED_ORJSON}"], [("3.11", "x86_64-manylinux_2_17")], downloads())
    yield projects
    index.close()


@pytest.fixture(scope="session")
def python312() -> Path:
    from layerkit.interpreters import find_python

    return find_python("3.12")


def extract(zip_path: Path, destination: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(destination)
    return destination


def make_wheel(folder: Path, name: str, files: dict[str, str], requires: tuple[str, ...] = (),
               version: str = "1.0") -> Path:
    """A pure-Python wheel ``name`` ``version`` holding ``files``, for an index or ``--find-links``."""
    import base64
    import hashlib

    dist = f"{name.replace('-', '_')}-{version}"
    files = {
        **files,
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {req}\n" for req in requires),
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
        f"{len(text.encode())}"
        for path, text in files.items()
    ]
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}.dist-info/RECORD", "\n".join([*record, f"{dist}.dist-info/RECORD,,"]) + "\n")
    return wheel


def run_isolated(python: Path, code: str, *paths: Path) -> tuple[int, str, str]:
    """Run ``code`` under ``python -I -S`` with only ``paths`` in front of the standard library."""
    import subprocess

    prelude = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n"
    proc = subprocess.run([str(python), "-I", "-S", "-c", prelude + code], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", "")}, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


sys.path.insert(0, str(ROOT))
