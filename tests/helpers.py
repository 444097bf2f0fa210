"""What many test modules share, in one place: the command line in a child process and its one-line errors,
folders and wheels made for a test, what is in a zip, what a failed build must leave behind, the ELF machine of a
compiled file, and small CDK apps checked by layerkit.check (``Checked``)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from functools import cached_property
from pathlib import Path

from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

import layerkit
from layerkit import SharedPythonLayer
from layerkit.core.targets import Target
from tests.conftest import LAYERS, app_context, synth_messages, write

#: The runtimes and architectures tests build for, as constructs take them.
PY312, PY313 = lambda_.Runtime.PYTHON_3_12, lambda_.Runtime.PYTHON_3_13
X86, ARM = lambda_.Architecture.X86_64, lambda_.Architecture.ARM_64
ARCHITECTURES = {"x86_64": X86, "arm64": ARM}
#: The target most builds are for.
TARGET_312 = Target("python3.12", "x86_64")
#: ``e_machine`` in an ELF header -> Lambda's architecture name.
ELF_MACHINES = {62: "x86_64", 183: "arm64"}


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """``layerkit ARGS...`` as a user runs it: a new process, this environment plus ``env``."""
    return subprocess.run([sys.executable, "-m", "layerkit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, input=stdin, env={**os.environ, **(env or {})})


def write_file(path: Path, text: str) -> Path:
    """``text`` at ``path``, its folders made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def quiet(_: str) -> None:
    """A progress reporter that says nothing."""


def elf_machine(data: bytes) -> str:
    """The architecture a compiled file (its first 20 bytes or more) is built for."""
    assert data[:4] == b"\x7fELF", "not an ELF file"
    return ELF_MACHINES[int.from_bytes(data[18:20], "little" if data[5] == 1 else "big")]


def assert_nothing_built(cache: Path) -> None:
    """A build that stopped left no build, no package entry and no scratch folder in the cache."""
    for kind in ("builds", "packages"):
        folder = cache / kind
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []
        assert entries == [], f"{kind} holds {entries}"
    assert [p for p in cache.glob("**/.tmp-*") if not p.name.endswith(".lock")] == []


def told(scope: object) -> list[tuple[str, str]]:
    """The errors the kit's constructs under ``scope`` told (``cdk synth`` prints them): (construct path,
    message), in the order they were told."""
    found = []
    for construct in scope.node.find_all():  # type: ignore[attr-defined]
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:error":
                found.append((construct.node.path, str(entry.data)))
    return found


def assert_told(scope: object, pattern: str, *, on: str | None = None) -> str:
    """The one error told under ``scope``, which matches ``pattern`` (and sits on the construct ``on``)."""
    errors = told(scope)
    assert len(errors) == 1, errors
    path, message = errors[0]
    assert re.search(pattern, message), message
    assert on is None or path == on, path
    assert "\n" not in message
    return message


LOCKED = ["orjson==3.10.16", "python-dateutil==2.9.0.post0", "six==1.17.0"]


MY_LAYER = (LAYERS / "my_layer" / "requirements.txt").read_text()


#: A layer owned by another app: its version's ARN, and the SSM parameter that app publishes it under.
ARN = "arn:aws:lambda:eu-west-1:111122223333:layer:common:7"
PARAMETER = "/platform/layers/common/arn"


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel_with(folder: Path, name: str, files: dict[str, bytes], version: str = "1.0") -> Path:
    """A wheel of ``files`` (paths inside the wheel, written as given: nothing checks them) with a RECORD."""
    dist = f"{name}-{version}"
    files = {**files,
             f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{dist}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                        b"Tag: py3-none-any\n"}
    rows = [f"{path},{record_hash(data)},{len(data)}" for path, data in files.items()]
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{dist}.dist-info/RECORD", "\n".join([*rows, f"{dist}.dist-info/RECORD,,"]) + "\n")
    return wheel


def sparse(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        file.truncate(size)
    return path


def cli_with_peak_memory(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """The CLI's result and the peak resident memory (MB) of the kit's own process (its VmHWM: getrusage's maxrss
    would count the memory of the process that forked it, kept across exec)."""
    code = ("import runpy, sys; sys.argv = ['layerkit', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('layerkit.cli', run_name='__main__')\n"
            "finally:\n    print(next(line.split()[1] for line in open('/proc/self/status') "
            "if line.startswith('VmHWM:')), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)
    *rest, peak = result.stderr.rstrip("\n").split("\n")
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout, "\n".join(rest) + "\n"), \
        int(peak) / 1024


def names(zip_path: Path) -> list[str]:
    with zipfile.ZipFile(zip_path) as archive:
        return sorted(n for n in archive.namelist() if not n.endswith("/"))


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("layerkit: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def one_line_cli_error(layer: Path, cache: Path, arch: str = "x86_64") -> str:
    proc = subprocess.run([sys.executable, "-m", "layerkit.cli", "build", str(layer), "--runtime", "python3.12",
                           "--arch", arch, "--cache-dir", str(cache)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("layerkit: error:")]
    assert len(errors) == 1, proc.stderr
    assert proc.stderr.rstrip("\n").endswith(errors[0]), proc.stderr
    return errors[0]


def layer(root: Path, requirements: str, module: str = "mod") -> Path:
    (root / "python").mkdir(parents=True)
    (root / "python" / f"{module}.py").write_text("VALUE = 1\n")
    (root / "requirements.txt").write_text(requirements)
    return root


def layer_folder(root: Path, files: dict[str, str | bytes]) -> Path:
    (root / "python").mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def make_layer(root: Path, requirements: str | None, module: str | None = "mod.py") -> Path:
    layer = root / "bad_layer"
    layer.mkdir()
    if module:
        (layer / "python").mkdir()
        (layer / "python" / module).write_text("VALUE = 1\n")
    if requirements is not None:
        (layer / "requirements.txt").write_text(requirements)
    return layer


def assert_nothing_cached(cache: Path) -> None:
    """No build in the cache, and no half-written folder anywhere in it."""
    builds = cache / "builds"
    assert [p.name for p in builds.iterdir() if not p.name.endswith(".lock")] == [] if builds.exists() else True
    assert [p for p in cache.glob("**/.tmp-*") if not p.name.endswith(".lock")] == []


def copy_layer(name: str, destination: Path) -> Path:
    return Path(shutil.copytree(LAYERS / name, destination / name))


def copy_project(project: Path, destination: Path) -> Path:
    return Path(shutil.copytree(project, destination / project.name, ignore=shutil.ignore_patterns(".venv")))


def entries(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "packages").iterdir() if p.is_dir() and not p.name.startswith("."))


def files_of(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def install_by_hand(layer: Path, requirement: str, index: str, python_version: str, platform: str) -> None:
    """What `pip install -t python/` on a laptop does: the laptop's Python and platform."""
    from layerkit.core import uv

    proc = subprocess.run([uv.binary(), "pip", "install", "--target", str(layer / "python"), "--index-url", index,
                           "--python", sys.executable, "--python-version", python_version, "--python-platform",
                           platform, "--only-binary", ":all:", "--no-deps", "--quiet", requirement],
                          capture_output=True, text=True, env=uv.environment(), timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr


def layerkit_build(layer: Path, cache: Path, out: Path | None = None, arch: str = "x86_64") -> subprocess.Popen:
    command = [sys.executable, "-m", "layerkit.cli", "build", str(layer), "--runtime", "python3.12",
               "--arch", arch, "--json", "--cache-dir", str(cache)]
    if out:
        command += ["--out", str(out)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def messages(assembly, stack: str) -> list[tuple[str, str, str]]:
    return [(m.id, m.level.value.lower(), str(m.entry.data)) for m in assembly.get_stack_by_name(stack).messages
            if "[layerkit:" in str(m.entry.data)]


def stack() -> Stack:
    return Stack(App(context=app_context()), "S")


class Checked:
    """A small app with layerkit.check applied; ``messages`` are the synthesized annotations."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())
        self.stack = Stack(self.app, "S")
        self.code = write(tmp_path / "code", {"index.py": "def handler(e, c):\n    return 1\n"})

    @cached_property
    def consumer(self) -> Stack:
        """A second stack that uses S's layers through SSM, where the CDK cannot see them."""
        return Stack(self.app, "C")

    def layer(self, name: str, files: dict[str, str], **options) -> SharedPythonLayer:
        options.setdefault("runtime", PY312)
        return SharedPythonLayer(self.stack, name, entry=write(self.tmp / name, files), **options)

    def function(self, name: str, layers: list, runtime=PY312, architecture=X86, stack=None) -> lambda_.Function:
        stack = stack or self.stack
        versions = [x.for_stack(stack) if isinstance(x, SharedPythonLayer) else x for x in layers]
        return lambda_.Function(stack, name, runtime=runtime, architecture=architecture,
                                handler="index.handler", code=lambda_.Code.from_asset(str(self.code)),
                                layers=versions)

    def messages(self, level: str | None = None) -> list[tuple[str, str, str]]:
        layerkit.check(self.app)
        found = [m for m in synth_messages(self.app) if "[layerkit:" in m[2]]
        return [m for m in found if level is None or m[1] == level]


def only(messages, rule):
    matching = [m for m in messages if f"[layerkit:{rule}]" in m[2]]
    assert len(matching) == 1, messages
    return matching[0]
