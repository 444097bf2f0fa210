"""The Docker builder (layerkit.docker.bundle): the CDK's own bundling on the Lambda build image gives what the local
build gives from the same folder, and a failure is one line with its fix."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda_python_alpha as python_alpha

from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assemble.local_build import build_function, build_layer
from layerkit.core.targets import Target
from layerkit.installed.distributions import distributions_in
from tests.conftest import LAYERS, ROOT, run_isolated
from tests.helpers import PY313, assert_told, files_of, names, told
from tests.lock_projects import LOCKED_ORJSON

TARGET = Target("python3.13", "x86_64")


#: The Docker builder on the engine's own default network (its bridge, where it has one, as a user's has).
DOCKER = {"layerkit:builder": "docker"}
#: ... on its host network: where a bundling container must reach the tests' package index on 127.0.0.1.
DOCKER_ON_HOST_NETWORK = {**DOCKER, "layerkit:docker-network": "host"}


def uploaded_assets(outdir: Path, stack: str) -> list[dict]:
    manifest = json.loads((outdir / f"{stack}.assets.json").read_text())
    return [a for a in manifest["files"].values() if a["source"]["packaging"] == "zip"]


@pytest.fixture(scope="module")
def python313() -> Path:
    from layerkit.core.interpreters import find_python

    return find_python("3.13")


def test_a_failing_docker_build_is_one_line_with_the_fix(lambda_images, tmp_path, monkeypatch):
    monkeypatch.setenv("LAYERKIT_CACHE_DIR", str(tmp_path / "cache"))  # no package of an earlier test's build
    folder = tmp_path / "no_network"
    (folder / "python").mkdir(parents=True)
    (folder / "python" / "mod.py").write_text("X = 1\n")
    (folder / "requirements.txt").write_text("six==1.17.0\n")
    app = App(outdir=str(tmp_path / "cdk.out"),
              context={"layerkit:builder": "docker", "layerkit:docker-network": "none"})
    stack = Stack(app, "Layers")
    SharedPythonLayer(stack, "Layer", entry=folder, runtime=PY313)
    message = assert_told(stack, "", on="Layers/Layer")
    assert message.startswith("Layers/Layer: layer no_network: the Docker build for python3.13 on x86_64 failed: "
                              "error:"), message
    assert "Temporary failure in name resolution" in message  # uv's deepest cause, beside its first line
    assert "set docker_network='host' (or cdk synth -c layerkit:docker-network=host)" in message
    log = Path(message.rsplit("(the whole output: ", 1)[1].rstrip(")"))
    assert "six" in log.read_text()  # the details are kept, not shown


@pytest.mark.parametrize("image", ["default", "docker/Dockerfile"])
def test_a_layer_bundled_on_the_build_image_is_the_local_build_of_the_same_folder(lambda_images, kit_cache,
                                                                                   tmp_path, image, python313):
    app = App(outdir=str(tmp_path / "cdk.out"), context=DOCKER)
    stack = Stack(app, "S")
    layer = SharedPythonLayer(stack, "MyLayer", entry=LAYERS / "my_layer", runtime=PY313,
                              docker_image_dir=ROOT / "docker" if image != "default" else None)
    assembly = app.synth()
    assert isinstance(layer.code.bundled_by, python_alpha.PythonLayerVersion)
    bundle = layer.code.content
    local = build_layer(LAYERS / "my_layer", TARGET, cache_dir=kit_cache)
    # The same files (bytes may differ: another pip, another Python build) and the same distributions.
    assert files_of(bundle) == names(local.zip)
    assert distributions_in(files_of(bundle), in_layer=True) == dict(p.split("==") for p in local.packages)
    assert not {"python/requirements.txt", "python/bin", "python/_layerkit"} & {
        "/".join(f.split("/")[:2]) for f in files_of(bundle)}
    (extension,) = [f for f in files_of(bundle) if f.endswith(".so")]
    assert ".cpython-313-x86_64-linux-gnu" in extension
    assert (bundle / extension).read_bytes()[18:20] == (62).to_bytes(2, "little")
    # The kit's .pyc: hash-based and unchecked (flags 0b01), recording the source's path on Lambda.
    pyc = bundle / "python" / "__pycache__" / "my_layer.cpython-313.pyc"
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b01
    code, out, err = run_isolated(python313, f"import marshal; print(marshal.loads(open({str(pyc)!r}, 'rb')"
                                             ".read()[16:]).co_filename)")
    assert (code, out.strip()) == (0, "/opt/python/my_layer.py"), err
    # Deployed under the local build's key, and uploaded once.
    (resource,) = [r for r in assembly.get_stack_by_name("S").template["Resources"].values()
                   if r["Type"] == "AWS::Lambda::LayerVersion"]
    (uploaded,) = uploaded_assets(Path(assembly.directory), "S")
    assert layer.asset_hash == local.asset_hash
    assert [d["objectKey"] for d in uploaded["destinations"].values()] == [resource["Properties"]["Content"]["S3Key"]]


@pytest.mark.parametrize("tool", ["uv", "poetry", "pipenv"])
def test_each_lock_format_goes_through_the_docker_builder(lambda_images, locked, kit_cache, tmp_path, tool):
    project = getattr(locked, tool)
    app = App(outdir=str(tmp_path / "cdk.out"), context=DOCKER_ON_HOST_NETWORK)
    layer = SharedPythonLayer(Stack(app, "S"), "Locked", entry=project, runtime=PY313)
    app.synth()
    local = build_layer(project, TARGET, cache_dir=kit_cache)
    in_bundle = distributions_in(files_of(layer.code.content), in_layer=True)
    assert in_bundle == dict(p.split("==") for p in local.packages)
    assert in_bundle["orjson"] == LOCKED_ORJSON  # the lock's, though the index offers a newer one
    assert "kit-devtool" not in in_bundle


def test_a_function_bundled_by_python_function_is_the_local_build_of_the_same_folder(lambda_images, kit_cache,
                                                                                     tmp_path):
    entry = ROOT / "lambdas" / "order_total"
    app = App(outdir=str(tmp_path / "cdk.out"), context=DOCKER)
    function = PythonFunction(Stack(app, "S"), "Fn", entry=entry, index="handler.py", runtime=PY313)
    app.synth()
    assert isinstance(function.code_asset.bundled_by, python_alpha.PythonFunction)
    local = build_function(entry, TARGET, cache_dir=kit_cache)
    bundle = function.code_asset.content
    assert files_of(bundle) == names(local.zip)
    assert {"handler.py", "six.py", "dateutil/parser/__init__.py"} <= set(files_of(bundle))
    assert "requirements.txt" not in files_of(bundle)
    assert function.asset_hash == local.asset_hash


def test_slimming_leaves_out_the_same_files_on_the_docker_builder(lambda_images, kit_cache, tmp_path, python313):
    """Slim's tests, debug symbols and left-out distributions, applied in the bundling container by the kit's own
    module (staged beside the code), ship what the local build ships: the same files, the same stripped .so."""
    import subprocess

    from layerkit.installed.slim import Slim
    from tests.conftest import make_wheel

    layer = tmp_path / "slimmed"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "own_tests").mkdir()
    (layer / "python" / "own_tests" / "keep.py").write_text("KEPT = True\n")  # the user's own: never slimmed
    source = tmp_path / "native.c"
    source.write_text("int kit_answer(void) { return 42; }\n")
    native = tmp_path / "_native.cpython-313-x86_64-linux-gnu.so"
    subprocess.run(["gcc", "-g3", "-O0", "-shared", "-fPIC", "-o", str(native), str(source)], check=True)
    wheel = make_wheel(layer / "wheels", "kit-slim", {"kit_slim/__init__.py": "", "kit_slim/tests/test_it.py": "X=1\n"})
    import zipfile as zf

    with zf.ZipFile(wheel, "a") as archive:  # a compiled file (not in RECORD: pip and uv install it anyway)
        archive.write(native, f"kit_slim/{native.name}")
    (layer / "requirements.txt").write_text("./wheels/kit_slim-1.0-py3-none-any.whl\nsix==1.17.0\n")
    slim = Slim(tests=True, debug_symbols=True, without=("six",))
    app = App(outdir=str(tmp_path / "cdk.out"), context=DOCKER)
    shared = SharedPythonLayer(Stack(app, "S"), "Slimmed", entry=layer, runtime=PY313, slim=slim)
    app.synth()
    bundle = shared.code.content
    local = build_layer(layer, TARGET, cache_dir=kit_cache, slim=slim)
    assert files_of(bundle) == names(local.zip)
    assert "python/own_tests/keep.py" in files_of(bundle)
    assert not [f for f in files_of(bundle) if "kit_slim/tests" in f or f.startswith("python/six")]
    with zipfile.ZipFile(local.zip) as archive:
        stripped = archive.read(f"python/kit_slim/{native.name}")
    assert (bundle / "python" / "kit_slim" / native.name).read_bytes() == stripped
    assert len(stripped) < native.stat().st_size
    assert shared.asset_hash == local.asset_hash


def test_a_function_bundled_in_docker_leaves_out_what_its_layers_ship(lambda_images, kit_cache, tmp_path):
    """The distributions a function's layers already ship at the same version are left out of the Docker bundle as
    of the local build (before, the container's removal never matched a distribution's folder name)."""
    entry = ROOT / "lambdas" / "order_total"  # python-dateutil==2.9.0.post0 and six==1.17.0
    layer = tmp_path / "six_layer"
    (layer / "python").mkdir(parents=True)
    (layer / "requirements.txt").write_text("six==1.17.0\n")
    app = App(outdir=str(tmp_path / "cdk.out"), context=DOCKER)
    stack = Stack(app, "S")
    shared = SharedPythonLayer(stack, "Six", entry=layer, runtime=PY313, builder="local")
    function = PythonFunction(stack, "Fn", entry=entry, index="handler.py", runtime=PY313, layers=[shared])
    app.synth()
    bundle = function.code_asset.content
    local = build_function(entry, TARGET, cache_dir=kit_cache, provided={"six": "1.17.0"})
    assert files_of(bundle) == names(local.zip)
    assert not [f for f in files_of(bundle) if f.startswith("six")]
    assert {"dateutil/parser/__init__.py", "handler.py"} <= set(files_of(bundle))


def test_every_file_but_the_pyc_is_byte_for_byte_the_local_builds(lambda_images, kit_cache, tmp_path):
    """jmespath and email-validator ship console scripts, whose RECORD lines record the installing machine's
    Python: the bundle and the local build leave out the same lines, so their RECORDs are the same bytes."""
    layer = tmp_path / "scripts"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "mine.py").write_text("MINE = 1\n")
    (layer / "requirements.txt").write_text("jmespath==1.0.1\nemail-validator==2.3.0\ndnspython==2.8.0\n"
                                            "idna==3.20\n")
    app = App(outdir=str(tmp_path / "cdk.out"), context=DOCKER)
    shared = SharedPythonLayer(Stack(app, "S"), "Scripts", entry=layer, runtime=PY313)
    app.synth()
    bundle = shared.code.content
    local = build_layer(layer, TARGET, cache_dir=kit_cache)
    with zipfile.ZipFile(local.zip) as archive:
        built = {n: archive.read(n) for n in archive.namelist() if not n.endswith("/")}
    bundled = {p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    assert sorted(bundled) == sorted(built)
    differ = sorted(name for name in built if built[name] != bundled[name] and not name.endswith(".pyc"))
    assert differ == []
    records = [n for n in built if n.endswith("/RECORD") and ("jmespath" in n or "email_validator" in n)]
    assert len(records) == 2
    assert all(b"bin/" not in built[n] for n in records)


def test_a_docker_build_after_a_local_build_takes_the_packages_it_made(lambda_images, tmp_path, monkeypatch, capfd):
    # Every pin of my_layer is in the package cache for python3.13 once the local build has run: the build
    # container is given them installed, and its uv, pointed at an index nothing answers, has nothing to fetch.
    cache = tmp_path / "cache"
    monkeypatch.setenv("LAYERKIT_CACHE_DIR", str(cache))
    local = build_layer(LAYERS / "my_layer", TARGET, cache_dir=cache)
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")  # inside the container: nothing listens
    app = App(outdir=str(tmp_path / "cdk.out"), context=DOCKER)
    stack = Stack(app, "S")
    shared = SharedPythonLayer(stack, "MyLayer", entry=LAYERS / "my_layer", runtime=PY313)
    assert told(stack) == []
    assert "pydantic-core==2.50.4, typing-extensions==4.16.0, typing-inspection==0.4.5 from the package cache, " \
           "installed in the build container" in capfd.readouterr().err
    bundle = shared.code.content
    with zipfile.ZipFile(local.zip) as archive:
        built = {n: archive.read(n) for n in archive.namelist() if not n.endswith("/")}
    bundled = {p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    assert sorted(bundled) == sorted(built)
    assert sorted(name for name in built if built[name] != bundled[name] and not name.endswith(".pyc")) == []


def test_an_arm64_function_is_told_the_pull_command_with_its_platform(lambda_images):
    from layerkit.assembly import Function
    from layerkit.core.errors import InvokeError
    from layerkit.invoke.session import choose_backend

    function = Function(id="S/Fn", stack="S", logical_id="Fn", handler="index.handler", runtime="python3.13",
                        architecture="arm64", memory_mb=128, timeout_s=3, environment={}, code=Path(), layers=())
    with pytest.raises(InvokeError, match=r"pull it \(docker pull --platform linux/arm64 "
                                          r"public\.ecr\.aws/lambda/python:3\.13\)"):
        choose_backend("docker", function)
