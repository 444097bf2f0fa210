"""The ways a user builds a layer's dependencies, each timed from empty caches with its zip step, and each output
checked (the right CPython ABI, the right ELF machine, a glibc the runtime's OS has) before its time counts.

A tool that fails on a requirement set is reported as failed, with its first error line, never dropped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from layerkit.core.targets import Target
from layerkit.installed.layer_paths import is_compiled
from layerkit.rules import native

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
VENV_BIN = Path(sys.executable).parent
BENCH_BIN = ROOT / ".venv-bench" / "bin"  # AWS SAM's builder and pip 26.3, on Python 3.12 (make bench)


@dataclass
class Run:
    """One timed run of a tool: its seconds and its zip, or why it failed."""

    seconds: float | None
    zip: Path | None
    error: str | None = None


def fresh(name: str) -> Path:
    path = WORK / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """This machine's environment without its pip configuration (a global constraints file, find-links to local
    wheels), which a user's machine would not have."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("PIP_") and k != "PIP_CERT")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def first_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[0][:300]


def check_layer(zip_path: Path, target: Target) -> str | None:
    """The first compiled file of the layer that cannot load on Lambda for ``target``, or None."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            if not is_compiled(info.filename):
                continue
            data = archive.read(info)
            problem = native.misfit(native.inspect(info.filename, data[: native.HEAD_BYTES]), target)
            if problem:
                return f"{info.filename} {problem}"
            if needed := native.glibc_too_new(data, target):
                return f"{info.filename} needs glibc {needed[0]}.{needed[1]}, {target.os} has {target.glibc}"
    return None


def _timed(name: str, commands: list[tuple[list[str], dict]], zip_path: Path, target: Target) -> Run:
    started = time.perf_counter()
    for command, options in commands:
        proc = subprocess.run(command, capture_output=True, text=True, **options)
        if proc.returncode != 0:
            return Run(None, None, f"{name}: {first_error(proc.stderr + proc.stdout)}")
    seconds = time.perf_counter() - started
    if problem := check_layer(zip_path, target):
        return Run(None, zip_path, f"{name}: wrong output: {problem}")
    return Run(seconds, zip_path)


def zip_step(folder: Path, zip_path: Path) -> tuple[list[str], dict]:
    return ["zip", "-qr", str(zip_path), "python"], {"cwd": folder}


def layer_folder(requirements: Path, name: str) -> Path:
    folder = fresh(name)
    (folder / "python").mkdir()
    (folder / "python" / "bench_layer.py").write_text("VALUE = 1\n")
    shutil.copy(requirements, folder / "requirements.txt")
    return folder


def kit(requirements: Path, name: str, target: Target, *, bytecode: bool = True, cache: Path | None = None,
        uv_cache: Path | None = None, layer: Path | None = None, workers: int | None = None,
        options: tuple[str, ...] = ()) -> Run:
    """``layerkit build`` as a user runs it (with ``options``, e.g. ``--slim tests``): a fresh process; empty
    caches unless given."""
    layer = layer or layer_folder(requirements, f"{name}-layer")
    cache = cache or fresh(f"{name}-cache")
    uv_cache = uv_cache or fresh(f"{name}-uv-cache")
    out = WORK / f"{name}.zip"
    command = [str(VENV_BIN / "layerkit"), "build", str(layer), "--runtime", target.runtime, "--arch",
               target.architecture, "--json", "--cache-dir", str(cache), "--out", str(out)]
    if not bytecode:
        command.append("--no-bytecode")
    if workers:
        command += ["--workers", str(workers)]
    command += options
    return _timed("layerkit", [(command, {"env": {**os.environ, "UV_CACHE_DIR": str(uv_cache)}})], out, target)


def uv_recipe(requirements: Path, name: str, target: Target, *, uv_cache: Path | None = None) -> Run:
    """uv's guide for Lambda, with the runtime's own ceiling: ``uv pip install --target`` then ``zip``; uv's
    cache empty unless given."""
    work = fresh(name)
    env = clean_env(UV_CACHE_DIR=str(uv_cache or work / "uv-cache"), UV_PYTHON_DOWNLOADS="never")
    install = [str(VENV_BIN / "uv"), "pip", "install", "--no-installer-metadata", "--no-compile-bytecode",
               "--python", sys.executable, "--python-version", target.python_version, "--python-platform",
               target.uv_platform, "--only-binary", ":all:", "--target", str(work / "python"), "-r", str(requirements),
               "--quiet"]
    return _timed("uv recipe", [(install, {"env": env}), zip_step(work, work / "layer.zip")], work / "layer.zip",
                  target)


def sam_builder(requirements: Path, name: str, target: Target) -> Run:
    """AWS SAM's builder (aws-lambda-builders, python_pip workflow, no container), then ``zip``."""
    work = fresh(name)
    source = work / "source"
    source.mkdir()
    shutil.copy(requirements, source / "requirements.txt")
    env = clean_env(PIP_CACHE_DIR=str(work / "pip-cache"))
    build = [str(BENCH_BIN / "python"), str(ROOT / "bench" / "sam_builder.py"), str(source), str(work / "python"),
             str(work / "scratch"), str(source / "requirements.txt"), target.runtime, target.architecture]
    return _timed("SAM builder", [(build, {"env": env}), zip_step(work, work / "layer.zip")], work / "layer.zip",
                  target)


def pip_documented(requirements: Path, name: str, target: Target) -> Run:
    """The command from AWS's documentation (Working with .zip archives for Python Lambda functions), then zip."""
    work = fresh(name)
    env = clean_env(PIP_CACHE_DIR=str(work / "pip-cache"))
    install = [str(BENCH_BIN / "python"), "-m", "pip", "install", "--platform", f"manylinux2014_{target.machine}",
               f"--target={work / 'python'}", "--implementation", "cp", "--python-version", target.python_version,
               "--only-binary=:all:", "--upgrade", "-r", str(requirements), "--quiet"]
    return _timed("pip (AWS docs)", [(install, {"env": env}), zip_step(work, work / "layer.zip")], work / "layer.zip",
                  target)


def machine_python() -> str:
    """The interpreter a user runs `pip` with: python3 on PATH outside this project's virtual environments."""
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != VENV_BIN)
    found = shutil.which("python3", path=path)
    if not found:
        raise SystemExit("bench: no python3 on PATH for the manual step")
    return found


def manual_step(requirements: Path, name: str, code: Path) -> Run:
    """The seed's manual step: `pip install -r requirements.txt -t python/` with the machine's pip, then zip.
    Its output is not checked: it installs this machine's wheels, which is the gotcha it stands for."""
    work = fresh(name)
    env = {**os.environ, "PIP_CACHE_DIR": str(work / "pip-cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    started = time.perf_counter()
    proc = subprocess.run([machine_python(), "-m", "pip", "install", "-q", "-r", str(requirements), "-t",
                           str(work / "python")], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return Run(None, None, f"manual step: {first_error(proc.stderr)}")
    shutil.copytree(code, work / "python", dirs_exist_ok=True)
    subprocess.run(["zip", "-qr", str(work / "layer.zip"), "python"], cwd=work, check=True)
    return Run(time.perf_counter() - started, work / "layer.zip")
