"""Compiled code (layerkit.rules.native): built for the target's Python, OS and machine, or named with what it was
built for."""

from __future__ import annotations

import zipfile

import pytest
from aws_cdk import aws_lambda as lambda_

from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import NativeCodeError
from layerkit.core.targets import Target
from tests.helpers import (
    ARM,
    Checked,
    assert_nothing_built,
    install_by_hand,
    layer_folder,
    only,
    quiet,
)
from tests.lock_projects import LOCKED_ORJSON

# -- the manual step's leftovers: packages installed into python/ -----------------------------------------


def test_a_compiled_package_installed_by_hand_for_another_python_stops_the_build_and_the_synth(locked, tmp_path):
    # The seed's first gotcha: orjson installed by this machine's Python 3.11 inside a python3.12 layer.
    layer = layer_folder(tmp_path / "manual", {})
    install_by_hand(layer, f"orjson=={LOCKED_ORJSON}", locked.index.url(), "3.11", "x86_64-manylinux_2_34")
    (so_file,) = [p.relative_to(layer).as_posix() for p in layer.rglob("*.so")]
    assert ".cpython-311-" in so_file
    with pytest.raises(NativeCodeError) as error:
        build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)
    assert str(error.value) == (
        f"layer manual: {so_file} is built for CPython 3.11 on x86_64 Linux, and it runs on python3.12 on x86_64 "
        "Linux, where it cannot load; delete it and list its package in requirements.txt, which the kit installs "
        "for python3.12/x86_64"
    )
    assert_nothing_built(tmp_path / "cache")
    # A layer zipped by hand with the same content fails the synth the same way.
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_

    import layerkit

    app = App(outdir=str(tmp_path / "cdk.out"))
    stack = Stack(app, "S")
    lambda_.LayerVersion(stack, "Manual", code=lambda_.Code.from_asset(str(layer)),
                         compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
                         compatible_architectures=[lambda_.Architecture.X86_64])
    layerkit.check(app)
    messages = [(m.id, m.level.value.lower(), str(m.entry.data)) for m in app.synth().get_stack_by_name("S").messages]
    assert [(path, level) for path, level, text in messages if "[layerkit:native-code-mismatch]" in text] == [
        ("/S/Manual", "error")]


def test_a_macs_extension_in_a_layer_is_named_with_what_it_was_built_for(tmp_path):
    macho = b"\xcf\xfa\xed\xfe" + bytes(60)
    layer = layer_folder(tmp_path / "mac", {"python/fast.cpython-312-darwin.so": macho})
    with pytest.raises(NativeCodeError, match=r"python/fast\.cpython-312-darwin\.so is built for macOS"):
        build_layer(layer, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache", report=quiet)


def test_x86_native_code_on_an_arm64_function(tmp_path, kit_cache):
    elf_x86_64 = b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x03\x00" + (62).to_bytes(2, "little") + bytes(44)
    path = tmp_path / "native.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("python/fast.cpython-312-x86_64-linux-gnu.so", elf_x86_64)
    app = Checked(tmp_path)
    native = lambda_.LayerVersion(app.stack, "Native", code=lambda_.Code.from_asset(str(path)))
    app.function("Fn", [native], architecture=ARM)
    path, level, text = only(app.messages(), "native-code-mismatch")
    assert (path, level) == ("/S/Fn", "error")
    assert ("python/fast.cpython-312-x86_64-linux-gnu.so is built for CPython 3.12 on x86_64 Linux, and it runs on "
            "python3.12 on aarch64 Linux, where it cannot load") in text
