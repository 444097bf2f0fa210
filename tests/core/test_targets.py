"""Targets (layerkit.core.targets): the runtimes and architectures Lambda accepts, and wheels each runtime's OS loads
on each machine."""

from __future__ import annotations

import zipfile

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit import SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import UnsupportedTargetError
from layerkit.core.targets import Target
from tests.conftest import app_context
from tests.helpers import assert_told, elf_machine, make_layer

#: The glibc of each runtime's OS, written here from AWS's documentation, not taken from the kit's own table.
GLIBC = {"python3.11": (2, 26), "python3.12": (2, 34), "python3.13": (2, 34), "python3.14": (2, 34)}


E_MACHINE = {"x86_64": 62, "arm64": 183}


@pytest.mark.parametrize(("runtime", "arch", "message"), [
    ("python3.9", "x86_64", r"unknown runtime 'python3\.9': layerkit builds for python3\.11, python3\.12"),
    ("nodejs20.x", "x86_64", r"unknown runtime 'nodejs20\.x'"),
    ("python3.12", "aarch64", "unknown architecture 'aarch64': use 'x86_64' or 'arm64'"),
])
def test_unknown_runtime_or_architecture(runtime, arch, message):
    with pytest.raises(UnsupportedTargetError, match=message):
        Target(runtime, arch)


def test_unknown_runtime_in_the_construct(tmp_path):
    layer = make_layer(tmp_path, None)
    stack = Stack(App(context=app_context()), "S")
    SharedPythonLayer(stack, "Old", entry=layer, runtime=lambda_.Runtime.PYTHON_3_9)
    assert_told(stack, r"^S/Old: unknown runtime 'python3\.9'", on="S/Old")


@pytest.mark.parametrize("runtime", list(GLIBC))
def test_every_lambda_python_runtime_gets_wheels_its_os_can_load_for_both_architectures(tmp_path, runtime):
    import re

    from layerkit.rules.native import glibc_needed

    layer = make_layer(tmp_path, "pydantic-core==2.50.4\n")
    for arch, machine in (("x86_64", "x86_64"), ("arm64", "aarch64")):
        build = build_layer(layer, Target(runtime, arch), cache_dir=tmp_path / "cache", bytecode=False)
        with zipfile.ZipFile(build.zip) as archive:
            (wheel,) = [n for n in archive.namelist() if n.startswith("python/pydantic_core-") and n.endswith("/WHEEL")]
            tags = [line.split(": ", 1)[1] for line in archive.read(wheel).decode().splitlines()
                    if line.startswith("Tag: ")]
            (extension,) = [n for n in archive.namelist() if n.endswith(".so")]
            elf = archive.read(extension)
        # The tags of the wheel uv actually chose: this runtime's CPython, this machine, and a manylinux
        # version that the runtime's glibc loads.
        python = "cp3" + runtime.removeprefix("python3.")
        assert tags, wheel
        for tag in tags:
            interpreter, abi, platform = tag.split("-")
            assert (interpreter, abi) == (python, python), tag
            glibc = re.fullmatch(rf"manylinux_(\d+)_(\d+)_{machine}|manylinux2014_{machine}", platform)
            assert glibc, tag
            assert (tuple(map(int, glibc.groups())) if glibc.group(1) else (2, 17)) <= GLIBC[runtime], tag
        assert f".cpython-3{runtime.removeprefix('python3.')}-" in extension
        assert int.from_bytes(elf[18:20], "little") == E_MACHINE[arch]
        assert glibc_needed(elf) <= GLIBC[runtime], (extension, glibc_needed(elf))


def test_compiled_dependency_is_built_for_the_target_architecture(my_layer):
    with zipfile.ZipFile(my_layer.zip) as archive:
        shared_objects = [n for n in archive.namelist() if n.endswith(".so")]
        assert shared_objects, "pydantic-core ships compiled code; the layer has none"
        for name in shared_objects:
            assert "cpython-312" in name or "abi3" in name, name
            assert elf_machine(archive.read(name)) == my_layer.architecture, name
