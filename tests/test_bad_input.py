"""Layer mistakes end with one clear message that names the fix, and leave nothing half-built behind."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match

from layerkit import SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import BuildError, LayerSourceError, MissingWheelError, UnsupportedTargetError
from layerkit.core.targets import Target
from tests.conftest import app_context, make_wheel

PY312 = Target("python3.12", "x86_64")


def make_layer(root: Path, requirements: str | None, module: str | None = "mod.py") -> Path:
    layer = root / "bad_layer"
    layer.mkdir()
    if module:
        (layer / "python").mkdir()
        (layer / "python" / module).write_text("VALUE = 1\n")
    if requirements is not None:
        (layer / "requirements.txt").write_text(requirements)
    return layer


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerkit.cli", *args], capture_output=True, text=True,
                          timeout=300)


def assert_nothing_cached(cache: Path) -> None:
    """No build in the cache, and no half-written folder anywhere in it."""
    builds = cache / "builds"
    assert [p.name for p in builds.iterdir() if not p.name.endswith(".lock")] == [] if builds.exists() else True
    assert [p for p in cache.glob("**/.tmp-*") if not p.name.endswith(".lock")] == []


def test_layer_without_python_folder(tmp_path):
    layer = make_layer(tmp_path, "", module=None)
    (layer / "mod.py").write_text("VALUE = 1\n")
    with pytest.raises(LayerSourceError, match=r"has no python/ folder.*move the layer's modules into"):
        build_layer(layer, PY312, cache_dir=tmp_path / "cache")
    # On the command line, such a folder is a function unless --layer says otherwise (tests/test_cli.py).
    result = cli("build", str(layer), "--layer", "--runtime", "python3.12", "--arch", "x86_64",
                 "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert "has no python/ folder" in result.stderr
    assert_nothing_cached(tmp_path / "cache")


def test_package_without_a_wheel_for_the_platform_is_named_with_the_fix(tmp_path):
    layer = make_layer(tmp_path, "docopt==0.6.2\n")  # published as a source archive only
    with pytest.raises(MissingWheelError) as error:
        build_layer(layer, PY312, cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert "docopt has no wheel for python3.12 on manylinux_2_34_x86_64" in message
    assert "pin a version of docopt that publishes a manylinux wheel" in message
    assert "-c layerkit:builder=docker" in message
    assert "layerkit build --builder docker" in message  # the fix, in whichever command was run
    assert_nothing_cached(tmp_path / "cache")


def test_unpinned_requirement_builds_with_a_warning(tmp_path, capfd):
    layer = make_layer(tmp_path, "six>=1.16\n")
    build = build_layer(layer, PY312, cache_dir=tmp_path / "cache")
    assert build.warnings == [
        "layer bad_layer: requirement 'six>=1.16' is not pinned to one version (requirements.txt:1); pin it (e.g. "
        "'name==1.2.3') or lock it, so that every build installs the same code"
    ]
    assert "warning: layer bad_layer: requirement 'six>=1.16' is not pinned" in capfd.readouterr().err
    with zipfile.ZipFile(build.zip) as archive:
        assert "python/six.py" in archive.namelist()


def test_unpinned_requirement_is_a_synth_warning_on_the_construct(tmp_path, kit_cache):
    layer = make_layer(tmp_path, "six\n")
    stack = Stack(App(context=app_context()), "S")
    SharedPythonLayer(stack, "Six", entry=layer, runtime=lambda_.Runtime.PYTHON_3_12)
    Annotations.from_stack(stack).has_warning("/S/Six", Match.string_like_regexp("'six' is not pinned"))


def test_missing_requirements_file_is_a_layer_of_pure_code(tmp_path):
    layer = make_layer(tmp_path, None)
    build = build_layer(layer, PY312, cache_dir=tmp_path / "cache", bytecode=False)
    with zipfile.ZipFile(build.zip) as archive:
        assert [n for n in archive.namelist() if not n.endswith("/")] == ["python/mod.py"]
    assert (build.packages, build.warnings) == ([], [])


def test_unreadable_requirement_names_the_line(tmp_path):
    layer = make_layer(tmp_path, "pydantic==2.14.3\npydantic = 2\n")
    with pytest.raises(LayerSourceError, match=r"requirements.txt:2: cannot read requirement 'pydantic = 2'"):
        build_layer(layer, PY312, cache_dir=tmp_path / "cache")


def test_module_that_a_requirement_also_installs_is_refused(tmp_path):
    layer = make_layer(tmp_path, "six==1.17.0\n", module="six.py")
    with pytest.raises(LayerSourceError, match=r"python/six.py is also installed by six \(a dependency\); rename"):
        build_layer(layer, PY312, cache_dir=tmp_path / "cache")
    assert_nothing_cached(tmp_path / "cache")


def test_two_unrelated_requirements_shipping_one_file_are_refused(tmp_path):
    # Neither needs the other, so no install order says whose helpers.py the layer should hold.
    layer = make_layer(tmp_path, "--no-index\n--find-links wheels\nkit-one==1.0\nkit-two==1.0\n")
    make_wheel(layer / "wheels", "kit-one", {"helpers.py": "WHO = 'one'\n"})
    make_wheel(layer / "wheels", "kit-two", {"helpers.py": "WHO = 'two'\n"})
    with pytest.raises(BuildError, match=r"kit-one and kit-two both ship helpers.py with different content, and "
                                         r"neither depends on the other.*keep only one of them"):
        build_layer(layer, PY312, cache_dir=tmp_path / "cache")
    assert_nothing_cached(tmp_path / "cache")


@pytest.mark.parametrize(("runtime", "arch", "message"), [
    ("python3.9", "x86_64", r"unknown runtime 'python3\.9': layerkit builds for python3\.11, python3\.12"),
    ("nodejs20.x", "x86_64", r"unknown runtime 'nodejs20\.x'"),
    ("python3.12", "aarch64", "unknown architecture 'aarch64': use 'x86_64' or 'arm64'"),
])
def test_unknown_runtime_or_architecture(runtime, arch, message):
    with pytest.raises(UnsupportedTargetError, match=message):
        Target(runtime, arch)


def test_unknown_runtime_on_the_command_line_is_a_usage_error(tmp_path):
    result = cli("build", str(tmp_path), "--runtime", "python3.9", "--arch", "x86_64")
    assert result.returncode == 2
    assert "invalid choice: 'python3.9'" in result.stderr


def test_unknown_runtime_in_the_construct(tmp_path):
    layer = make_layer(tmp_path, None)
    stack = Stack(App(context=app_context()), "S")
    with pytest.raises(UnsupportedTargetError, match=r"unknown runtime 'python3\.9'"):
        SharedPythonLayer(stack, "Old", entry=layer, runtime=lambda_.Runtime.PYTHON_3_9)


#: The glibc of each runtime's OS, written here from AWS's documentation, not taken from the kit's own table.
GLIBC = {"python3.11": (2, 26), "python3.12": (2, 34), "python3.13": (2, 34), "python3.14": (2, 34)}
ELF_MACHINE = {"x86_64": 62, "arm64": 183}


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
        assert int.from_bytes(elf[18:20], "little") == ELF_MACHINE[arch]
        assert glibc_needed(elf) <= GLIBC[runtime], (extension, glibc_needed(elf))
