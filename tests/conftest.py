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
def python312() -> Path:
    from layerkit.interpreters import find_python

    return find_python("3.12")


def extract(zip_path: Path, destination: Path) -> Path:
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(destination)
    return destination


def run_isolated(python: Path, code: str, *paths: Path) -> tuple[int, str, str]:
    """Run ``code`` under ``python -I -S`` with only ``paths`` in front of the standard library."""
    import subprocess

    prelude = f"import sys; sys.path[:0] = {[str(p) for p in paths]!r}\n"
    proc = subprocess.run([str(python), "-I", "-S", "-c", prelude + code], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", "")}, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


sys.path.insert(0, str(ROOT))
