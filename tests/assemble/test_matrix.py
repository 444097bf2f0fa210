"""A layer for several runtimes and architectures (layerkit.assemble.matrix): as few versions as correctness allows,
shared files once, each function given the version for its target."""

from __future__ import annotations

import json
import zipfile

import pytest
from aws_cdk import App, Stack

import layerkit
from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.assemble.matrix import build_variants
from layerkit.assembly import Assembly
from layerkit.invoke import invoke_function
from layerkit.sources import SourceFolder
from tests.conftest import app_context, synth_messages, write
from tests.helpers import ARM, MY_LAYER, PY312, PY313, TARGET_312, X86, assert_told, elf_machine, layer, quiet
from tests.lock_projects import LOCKED_ORJSON

HANDLER = ("import sys, orjson, dateutil, common\n\n"
           "def handler(event, context):\n"
           "    return {'python': '%d.%d' % sys.version_info[:2], 'orjson': orjson.__file__,\n"
           "            'dateutil': dateutil.__file__, 'json': orjson.dumps({'a': 1}).decode(),\n"
           "            'common': common.WHO}\n")


@pytest.fixture(scope="module")
def matrix(locked, kit_cache, tmp_path_factory):
    src = tmp_path_factory.mktemp("matrix-src")
    index = f"--index-url {locked.index.url()}\n"
    write(src / "common", {"python/common.py": "WHO = 'common'\n",
                           "requirements.txt": f"{index}orjson=={LOCKED_ORJSON}\npython-dateutil==2.9.0.post0\n"})
    write(src / "pure", {"python/pure.py": "WHO = 'pure'\n", "requirements.txt": f"{index}six==1.17.0\n"})
    write(src / "fn", {"index.py": HANDLER})
    outdir = tmp_path_factory.mktemp("cdk.out")
    cdk_app = App(outdir=str(outdir), context=app_context())
    owner, users = Stack(cdk_app, "owner"), Stack(cdk_app, "users")
    common = SharedPythonLayer(owner, "Common", entry=src / "common", runtimes=[PY312, PY313],
                               architectures=[X86, ARM])
    pure = SharedPythonLayer(owner, "Pure", entry=src / "pure", runtimes=[PY312, PY313], architectures=[X86, ARM])
    for name, runtime, architecture in [("Fn312", PY312, X86), ("Fn313", PY313, X86), ("Fn313Arm", PY313, ARM)]:
        PythonFunction(users, name, entry=src / "fn", runtime=runtime, architecture=architecture,
                       layers=[common, pure])
    layerkit.check(cdk_app)
    messages = synth_messages(cdk_app)
    return cdk_app, common, pure, Assembly.load(outdir), messages


def test_a_compiled_layer_has_one_version_per_architecture_and_a_pure_one_a_single_version(matrix):
    _, common, pure, _, _ = matrix
    assert [(v.variant.architectures, v.variant.runtimes) for v in common.versions] == [
        (("x86_64",), ("python3.12", "python3.13")), (("arm64",), ("python3.12", "python3.13"))]
    assert [(v.variant.architectures, v.variant.runtimes) for v in pure.versions] == [
        (("x86_64", "arm64"), ("python3.12", "python3.13"))]
    assert [v.publication.parameter_name for v in common.versions] == [
        "/owner/layers/common/x86_64/arn", "/owner/layers/common/arm64/arn"]
    assert pure.versions[0].publication.parameter_name == "/owner/layers/pure/arn"


def test_files_identical_for_every_runtime_sit_once_in_python_and_the_rest_per_runtime(matrix):
    _, common, _, _, _ = matrix
    for version in common.versions:
        with zipfile.ZipFile(version.content) as archive:
            names = set(archive.namelist())
            shared = {n for n in names if n.startswith("python/dateutil/") and n.endswith(".py")}
            assert shared, "python-dateutil (pure, the same for both runtimes) is not in python/"
            assert not [n for n in names if "/site-packages/dateutil/" in n]
            for runtime, tag in (("3.12", "312"), ("3.13", "313")):
                site = f"python/lib/python{runtime}/site-packages/"
                extensions = [n for n in names if n.startswith(site + "orjson/") and n.endswith(".so")]
                assert len(extensions) == 1, (runtime, sorted(names)[:20])
                assert f"cpython-{tag}" in extensions[0]
                elf = archive.read(extensions[0])
                assert elf_machine(elf) == version.variant.architectures[0]
                # .pyc of both runtimes side by side for a shared module, each for its own runtime's site-packages
                assert f"python/__pycache__/common.cpython-{tag}.pyc" in names
                assert any(n.startswith(site + "orjson/__pycache__/") and n.endswith(f".cpython-{tag}.pyc")
                           for n in names)
            assert not [n for n in names if n.startswith("python/orjson")]


def test_each_function_gets_the_version_for_its_runtime_and_architecture(matrix):
    _, _, _, assembly, messages = matrix
    assert [m for m in messages if m[1] == "error"] == []
    uses = {fn.id: [(u.layer.name, u.layer.architectures, u.via) for u in fn.layers] for fn in assembly.functions()}
    assert uses["users/Fn312"] == [("common", ("x86_64",), "ssm"), ("pure", ("x86_64", "arm64"), "ssm")]
    assert uses["users/Fn313Arm"] == [("common", ("arm64",), "ssm"), ("pure", ("x86_64", "arm64"), "ssm")]


@pytest.mark.parametrize(("function", "python"), [("users/Fn312", "3.12"), ("users/Fn313", "3.13")])
def test_python312_and_python313_functions_on_one_matrix_layer_invoke(matrix, function, python):
    _, _, _, assembly, _ = matrix
    (result,) = invoke_function(assembly.function(function), [b"{}"], backend="sandbox")
    assert result.ok, result.payload
    assert result.payload["python"] == python
    assert result.payload["orjson"].startswith(f"/opt/python/lib/python{python}/site-packages/orjson/")
    assert result.payload["dateutil"] == "/opt/python/dateutil/__init__.py"
    assert (result.payload["json"], result.payload["common"]) == ('{"a":1}', "common")


def test_describe_lists_every_version(matrix):
    import subprocess
    import sys

    _, _, _, assembly, _ = matrix
    result = subprocess.run([sys.executable, "-m", "layerkit.cli", "describe", "--assembly", str(assembly.directory),
                             "--json"], capture_output=True, text=True, timeout=120)
    layers = json.loads(result.stdout)["layers"]
    assert sorted((layer["name"], tuple(layer["architectures"])) for layer in layers) == [
        ("common", ("arm64",)), ("common", ("x86_64",)), ("pure", ("x86_64", "arm64"))]


def test_a_pair_the_kit_cannot_build_stops_the_synth_naming_the_pair_and_the_package(tmp_path, kit_cache):
    layer = write(tmp_path / "old", {"python/m.py": "", "requirements.txt": "pydantic-core==2.10.1\n"})  # no cp313
    old = SharedPythonLayer(Stack(App(context=app_context()), "S"), "Old", entry=layer, runtimes=[PY312, PY313])
    assert_told(old, r"pydantic-core has no wheel for python3.13 on manylinux_2_34_x86_64", on="S/Old")


def test_a_plain_function_must_name_its_target_for_a_layer_of_several_architectures(matrix):
    _, common, _, _, _ = matrix
    consumer = Stack(App(context=app_context()), "plain")
    common.for_stack(consumer)  # the consumer's mistake, told on it
    assert_told(consumer, r"pass the function's: for_stack\(stack, runtime=..., architecture=...\)", on="plain")


def test_a_matrix_after_a_plain_build_of_its_folder_takes_every_package_the_cache_holds(tmp_path):
    # The folder built for python3.12/x86_64, then as a layer for python3.12 and 3.13: the 3.12 part is the plain
    # build's packages, the 3.13 part the pure ones it compressed; only pydantic-core is compressed again. A cold
    # matrix compresses the pure packages once too, for its first target.
    folder = layer(tmp_path / "folder", MY_LAYER)
    cache = tmp_path / "cache"
    build_layer(folder, TARGET_312, cache_dir=cache, report=quiet)
    (after,) = build_variants(SourceFolder.layer(folder), ["python3.12", "python3.13"], ["x86_64"], cache_dir=cache,
                              report=quiet, bytecode=True)
    (cold,) = build_variants(SourceFolder.layer(folder), ["python3.12", "python3.13"], ["x86_64"],
                             cache_dir=tmp_path / "cold", report=quiet, bytecode=True)
    assert after.package_cache == {"reused": 9, "compiled": 0, "installed": 1}
    assert cold.package_cache == {"reused": 4, "compiled": 0, "installed": 6}
    assert after.sha256 == cold.sha256
