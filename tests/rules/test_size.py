"""Lambda's 250 MB (layerkit.rules.size): near it warns, over it stops, saying what would make it fit; a file over it
is refused before it is read."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import zipfile
from functools import cached_property
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

import layerkit
from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import LayerSourceError
from layerkit.core.targets import Target
from tests.conftest import app_context, make_wheel, synth_messages, write
from tests.helpers import quiet

PY312_RUNTIME = lambda_.Runtime.PYTHON_3_12


def messages(assembly, stack: str) -> list[tuple[str, str, str]]:
    return [(m.id, m.level.value.lower(), str(m.entry.data)) for m in assembly.get_stack_by_name(stack).messages
            if "[layerkit:" in str(m.entry.data)]


PY312, PY313 = lambda_.Runtime.PYTHON_3_12, lambda_.Runtime.PYTHON_3_13


X86, ARM = lambda_.Architecture.X86_64, lambda_.Architecture.ARM_64


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


class Checked:
    """A small app with layerkit.check applied; ``messages`` are the synthesized annotations."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())
        self.stack = Stack(self.app, "S")
        self.code = tree(tmp_path / "code", {"index.py": "def handler(e, c):\n    return 1\n"})

    @cached_property
    def consumer(self) -> Stack:
        """A second stack that uses S's layers through SSM, where the CDK cannot see them."""
        return Stack(self.app, "C")

    def layer(self, name: str, files: dict[str, str], **options) -> SharedPythonLayer:
        options.setdefault("runtime", PY312)
        return SharedPythonLayer(self.stack, name, entry=tree(self.tmp / name, files), **options)

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


@pytest.fixture(scope="module")
def big_zip(tmp_path_factory) -> Path:
    """A layer of 210 MB unzipped (zeros compress to almost nothing): 84% of Lambda's limit."""
    path = tmp_path_factory.mktemp("big") / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        chunk = bytes(105 * 1024 * 1024)
        archive.writestr("python/data/a.bin", chunk)
        archive.writestr("python/data/b.bin", chunk)
    return path


TARGET_312 = Target("python3.12", "x86_64")


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


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("layerkit: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# -- 6. Lambda's limits in every command, and the tools to meet them -------------------------------------------
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


def test_the_size_limit_counts_the_functions_own_dependencies(tmp_path, kit_cache):
    entry = write(tmp_path / "heavy", {"index.py": "def handler(event, context):\n    return 1\n",
                                       "requirements.txt": "./wheels/kit_big-1.0-py3-none-any.whl\n"})
    make_wheel(entry / "wheels", "kit-big", {"kit_big/data.txt": "0" * (60 * 1024 * 1024)})
    layer_zip = tmp_path / "layer.zip"
    with zipfile.ZipFile(layer_zip, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("python/data.bin", bytes(200 * 1024 * 1024))
    cdk_app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())
    stack = Stack(cdk_app, "S")
    layer = lambda_.LayerVersion(stack, "Data", code=lambda_.Code.from_asset(str(layer_zip)))
    PythonFunction(stack, "Heavy", entry=entry, runtime=PY312_RUNTIME, layers=[layer], bytecode=False)
    layerkit.check(cdk_app)
    found = [m for m in synth_messages(cdk_app) if "[layerkit:" in m[2]]
    (too_large,) = [m for m in found if "[layerkit:too-large]" in m[2]]
    assert too_large[:2] == ("/S/Heavy", "error")
    assert "code plus layers is 260 MB unzipped; Lambda allows 250 MB" in too_large[2]


def test_near_the_size_limit_warns_and_over_it_fails(tmp_path, kit_cache, big_zip):
    app = Checked(tmp_path)
    big = lambda_.LayerVersion(app.stack, "Big", code=lambda_.Code.from_asset(str(big_zip)))
    twin = lambda_.LayerVersion(app.stack, "Twin", code=lambda_.Code.from_asset(str(big_zip)))
    app.function("Near", [big])
    app.function("Over", [big, twin])
    messages = app.messages()
    assert only(messages, "nearly-too-large")[:2] == ("/S/Near", "warning")
    assert "over 80% of Lambda's 250 MB limit" in only(messages, "nearly-too-large")[2]
    path, level, text = only(messages, "too-large")
    assert (path, level) == ("/S/Over", "error")
    assert "code plus layers is 420 MB unzipped; Lambda allows 250 MB" in text


def test_a_zip_over_50_mb_is_a_note_that_s3_upload_is_fine(tmp_path, kit_cache):
    path = tmp_path / "stored.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("python/data.bin", bytes(51 * 1024 * 1024))
    app = Checked(tmp_path)
    app.function("Fn", [lambda_.LayerVersion(app.stack, "Large", code=lambda_.Code.from_asset(str(path)))])
    _, level, text = only(app.messages(), "large-zip")
    assert level == "info"
    assert "over Lambda's 50 MB direct-upload limit: the CDK uploads it through S3, which is fine" in text


def test_a_member_over_the_limit_on_its_own_is_refused_before_it_is_read(tmp_path):
    layer = write(tmp_path / "huge", {"python/mod.py": "",
                                      "requirements.txt": "./wheels/kit_huge-1.0-py3-none-any.whl\n"})
    wheel = layer / "wheels" / "kit_huge-1.0-py3-none-any.whl"
    wheel_with(wheel.parent, "kit_huge", {"kit_huge/__init__.py": b""})
    with zipfile.ZipFile(wheel, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive, \
            archive.open("kit_huge/weights.bin", "w", force_zip64=True) as member:
        piece = bytes(16 * 1024 * 1024)
        for _ in range(64):  # 1 GiB of zeros, written in pieces (the RECORD does not list it: nothing checks)
            member.write(piece)
    result, peak = cli_with_peak_memory("build", str(layer), "--runtime", "python3.12", "--arch", "x86_64",
                                        "--cache-dir", str(tmp_path / "cache"))
    message = one_line(result)
    assert message.startswith("layerkit: error: layer huge: kit_huge/weights.bin from kit-huge==1.0 is 1024 MB on "
                              "its own, over Lambda's 250 MB")
    assert peak < 150


def test_a_file_of_the_folder_over_the_limit_is_refused_before_it_is_read(tmp_path):
    layer = write(tmp_path / "bigfile", {"python/mod.py": ""})
    sparse(layer / "python" / "blob.bin", 300 * 1024 * 1024)
    with pytest.raises(LayerSourceError, match=r"blob.bin is 300 MB on its own, over Lambda's limit of 250 MB"):
        build_layer(layer, TARGET_312, cache_dir=tmp_path / "cache", report=quiet)
