"""Which builder makes a construct's code (layerkit.constructs.builder_choice, layerkit.constructs.code): auto's one
builder per app, the context key, and the Docker builder as the CDK's own constructs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.assembly import Assembly
from layerkit.core.targets import Target
from layerkit.invoke.session import invoke_function
from tests.conftest import LAYERS, ROOT, app_context, synth_messages
from tests.helpers import ARCHITECTURES, PY312, PY313, assert_told, elf_machine, files_of, names


def one_builder_warning(app: App) -> str:
    messages = [text for _, level, text in synth_messages(app)
                if level == "warning" and "every construct of this app is built without Docker" in text]
    assert len(messages) == 1, messages
    return messages[0]


def machines_in(zip_or_folder: Path) -> set[str]:
    if zip_or_folder.is_dir():
        blobs = [p.read_bytes()[:20] for p in zip_or_folder.rglob("*.so")]
    else:
        with zipfile.ZipFile(zip_or_folder) as archive:
            blobs = [archive.read(n)[:20] for n in archive.namelist() if n.endswith(".so")]
    return {elf_machine(blob) for blob in blobs}


@pytest.fixture
def pydantic_function(tmp_path: Path) -> Path:
    folder = tmp_path / "uses_pydantic"
    folder.mkdir()
    (folder / "index.py").write_text(
        "import platform, pydantic, my_layer\n\n"
        "def handler(event, context):\n"
        "    return {'pydantic': pydantic.VERSION, 'machine': platform.machine()}\n")
    return folder


STAND_IN = """\
#!{python}
# A stand-in docker client: records its arguments; `docker info` answers as told; no image is cached;
# `docker run` of a CDK bundling container leaves a file in /asset-output, as a real build leaves the layer.
import json, os, sys
args = sys.argv[1:]
with open(os.environ["DOCKER_CALLS"], "a") as calls:
    calls.write(json.dumps(args) + "\\n")
if args[:1] == ["info"]:
    sys.exit(0 if os.environ["DOCKER_INFO_OK"] == "1" else 1)
if args[:2] == ["image", "inspect"]:
    sys.exit(1)  # no image cached yet: the CDK builds it
if args[:1] == ["run"]:
    for flag, value in zip(args, args[1:]):
        host, _, inside = value.partition(":")
        if flag == "-v" and inside.startswith("/asset-output"):
            os.makedirs(os.path.join(host, "python"), exist_ok=True)
            open(os.path.join(host, "python", "built_in_docker.txt"), "w").close()
"""


@pytest.fixture
def stand_in_docker(tmp_path, monkeypatch):
    def install(info_ok: bool) -> Path:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        docker = bin_dir / "docker"
        docker.write_text(STAND_IN.format(python=sys.executable))
        docker.chmod(0o755)
        calls = tmp_path / "docker-calls.jsonl"
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("DOCKER_CALLS", str(calls))
        monkeypatch.setenv("DOCKER_INFO_OK", "1" if info_ok else "0")
        return calls

    return install


def recorded(calls: Path) -> list[list[str]]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


SYNTH_WITH_DOCKER = textwrap.dedent("""
    import json, sys
    import layerkit
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_lambda_python_alpha as python_alpha
    from layerkit import SharedPythonLayer
    app = App(outdir=sys.argv[2], context={"layerkit:builder": "docker"})
    layer = SharedPythonLayer(Stack(app, "S"), "L", entry=sys.argv[1], runtime=lambda_.Runtime.PYTHON_3_12,
                              architecture=lambda_.Architecture.ARM_64, docker_image_dir=sys.argv[3])
    assembly = app.synth()
    print(json.dumps({
        "builder": layer.builder,
        "python_layer_version": isinstance(layer.code.bundled_by, python_alpha.PythonLayerVersion),
        "asset_hash": layer.asset_hash,
        "template": assembly.get_stack_by_name("S").template,
    }))
""")


SYNTH_FUNCTION_WITH_DOCKER = textwrap.dedent("""
    import json, sys
    import layerkit
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_lambda_python_alpha as python_alpha
    from layerkit import PythonFunction
    app = App(outdir=sys.argv[2], context={"layerkit:builder": "docker"})
    function = PythonFunction(Stack(app, "S"), "Fn", entry=sys.argv[1], index="handler.py",
                              runtime=lambda_.Runtime.PYTHON_3_12)
    template = app.synth().get_stack_by_name("S").template
    bundled_by = function.code_asset.bundled_by
    print(json.dumps({
        "builder": function.builder,
        "python_function": isinstance(bundled_by, python_alpha.PythonFunction),
        "bundled_handler": bundled_by.node.default_child.handler,
        "asset_hash": function.asset_hash,
        "template": template,
    }))
""")


@pytest.mark.parametrize("order", [("arm64", "x86_64"), ("x86_64", "arm64")], ids=["arm64-first", "x86_64-first"])
def test_an_arm64_layer_the_engine_cannot_build_makes_the_whole_app_local_with_one_warning(
        lambda_images, kit_cache, tmp_path, order, pydantic_function):
    app = App(outdir=str(tmp_path / "cdk.out"))  # no builder, no network given: auto
    layers = {arch: SharedPythonLayer(Stack(app, f"Layers{arch.replace('_', '')}"), "Layer", entry=LAYERS / "my_layer",
                                      runtime=PY313, architecture=ARCHITECTURES[arch]) for arch in order}
    function = PythonFunction(Stack(app, "Functions"), "Fn", entry=pydantic_function, runtime=PY313,
                              layers=[layers["x86_64"]])
    warning = one_builder_warning(app)
    assert "Docker cannot build for python3.13 on arm64 here" in warning, warning
    assert "public.ecr.aws/sam/build-python3.13 for linux/arm64 is not in the Docker engine" in warning
    assert "set -c layerkit:builder=local" in warning
    assert {layer.builder for layer in layers.values()} | {function.builder} == {"local"}
    # The arm64 layer holds arm64 code, which the engine (x86_64, no emulation) would have built for x86_64.
    assert machines_in(layers["arm64"].versions[0].content) == {"arm64"}
    assert machines_in(layers["x86_64"].versions[0].content) == {"x86_64"}
    if order[0] == "x86_64":
        # Docker bundled the x86_64 layer first; the app turned local and built it again, in place.
        assert "1 construct bundled in Docker before this one was built again without it" in warning
        local = build_layer(LAYERS / "my_layer", Target("python3.13", "x86_64"), cache_dir=kit_cache)
        assert files_of(layers["x86_64"].versions[0].content) == names(local.zip)
    builders = {entry["data"]["builder"] for stack in ("Layersx8664", "Layersarm64")
                for entries in json.loads((tmp_path / "cdk.out" / f"{stack}.metadata.json").read_text()).values()
                for entry in entries if entry["type"] == "layerkit:layer"}
    assert builders == {"local"}
    (result,) = invoke_function(Assembly.load(tmp_path / "cdk.out").function("Functions/Fn"), [b"{}"],
                                backend="sandbox")
    assert result.ok, result.body
    assert result.payload["machine"] == "x86_64"


@pytest.mark.parametrize("runtimes", [(PY312, PY313), (PY313, PY312)], ids=["3.12-first", "3.13-first"])
def test_an_app_of_two_runtimes_uses_one_builder(lambda_images, kit_cache, tmp_path, runtimes):
    app = App(outdir=str(tmp_path / "cdk.out"))
    layers = [SharedPythonLayer(Stack(app, f"Layers{runtime.name[-2:]}"), "Layer", entry=LAYERS / "another_layer",
                                runtime=runtime) for runtime in runtimes]
    warning = one_builder_warning(app)  # the python3.12 build image is not in the engine and cannot be pulled
    assert "public.ecr.aws/sam/build-python3.12 for linux/amd64 is not in the Docker engine" in warning, warning
    assert [layer.builder for layer in layers] == ["local", "local"]


def test_where_the_engine_can_build_every_target_auto_bundles_in_docker_with_a_bridge_or_without(
        either_engine, kit_cache, tmp_path):
    app = App(outdir=str(tmp_path / "cdk.out"))  # no network given: the bridge where there is one, else host
    layer = SharedPythonLayer(Stack(app, "Layers"), "Layer", entry=LAYERS / "my_layer", runtime=PY313)
    messages = synth_messages(app)
    assert layer.builder == "docker"
    assert not [text for _, _, text in messages if "without Docker" in text]
    local = build_layer(LAYERS / "my_layer", Target("python3.13", "x86_64"), cache_dir=kit_cache)
    assert files_of(layer.versions[0].content) == names(local.zip)


def test_without_a_daemon_the_local_builder_is_chosen(stand_in_docker, kit_cache):
    calls = stand_in_docker(info_ok=False)
    stack = Stack(App(), "S")
    layer = SharedPythonLayer(stack, "L", entry=LAYERS / "another_layer", runtime=lambda_.Runtime.PYTHON_3_12)
    assert layer.builder == "local"
    assert type(layer.layer_version) is lambda_.LayerVersion
    assert recorded(calls) == [["info"]]


def test_the_context_key_forces_the_local_builder_without_asking_docker(stand_in_docker, kit_cache):
    calls = stand_in_docker(info_ok=True)
    stack = Stack(App(context=app_context()), "S")
    layer = SharedPythonLayer(stack, "L", entry=LAYERS / "another_layer", runtime=lambda_.Runtime.PYTHON_3_12)
    assert layer.builder == "local"
    assert recorded(calls) == []


def test_the_docker_builder_bundles_with_python_layer_version_on_the_lambda_build_image(stand_in_docker, tmp_path):
    calls = stand_in_docker(info_ok=True)
    # A fresh process: the CDK runs `docker` from its Node.js process, which must see the stand-in on PATH.
    env = {**os.environ, "LAYERKIT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", SYNTH_WITH_DOCKER, str(LAYERS / "my_layer"), str(tmp_path / "out"),
         str(ROOT / "docker")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["builder"] == "docker"
    assert result["python_layer_version"] is True

    commands = recorded(calls)
    assert ["network", "ls", "--format", "{{.Name}}"] in commands  # asked once: is there a bridge network?
    build = next(c for c in commands if c[0] == "build")
    assert "IMAGE=public.ecr.aws/sam/build-python3.12" in build
    assert build[build.index("--platform") + 1] == "linux/arm64"
    assert build[-1] == str(ROOT / "docker")  # the project's Dockerfile: pinned pip, no stale .pyc
    run = next(c for c in commands if c[0] == "run")
    mounts = [run[i + 1] for i, flag in enumerate(run) if flag == "-v"]
    source = next(m.split(":")[0] for m in mounts if ":/asset-input" in m)
    # The staged entry holds the layer's modules at its top: PythonLayerVersion puts them under python/; the kit's
    # own modules the container runs (_layerkit) never reach the bundle.
    assert sorted(p.name for p in Path(source).iterdir()) == ["_layerkit", "my_layer.py"]
    # The requirements sit in _layerkit/, where the alpha's own pip does not see them: the kit's hook installs them
    # with the image's uv (the local build's version), from the download cache mounted beside the bundle.
    assert (Path(source) / "_layerkit" / "requirements.txt").is_file()
    assert "--python-platform aarch64-manylinux_2_34 --target /asset-output/python -r requirements.txt" in run[-1]
    assert "python -m pip install --quiet --no-compile -r requirements.txt -t /asset-output/python" in run[-1]
    assert any(m.endswith(":/tmp/layerkit-downloads:delegated") for m in mounts)
    # The engine has no bridge network (the stand-in lists none): the container gets the host's.
    assert run[run.index("--network") + 1] == "host"
    dropped = next(c for c in run[-1].split(" && ") if c.startswith("rm -rf "))
    assert {"/asset-output/python/requirements.txt", "/asset-output/python/bin",
            "/asset-output/python/_layerkit"} <= set(dropped.split()[2:])
    assert "python -m compileall -q -j 0 --invalidation-mode unchecked-hash" in run[-1]

    # Same asset hash as the local builder: moving between machines never creates a new layer version.
    from layerkit.assemble.local_build import build_layer
    from layerkit.core.targets import Target

    local = build_layer(LAYERS / "my_layer", Target("python3.12", "arm64"), cache_dir=tmp_path / "cache")
    assert local.asset_hash == result["asset_hash"]
    (layer,) = [r for r in result["template"]["Resources"].values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    local_app = App(outdir=str(tmp_path / "local-out"), context=app_context())
    local_stack = Stack(local_app, "S")
    SharedPythonLayer(local_stack, "L", entry=LAYERS / "my_layer", runtime=lambda_.Runtime.PYTHON_3_12,
                      architecture=lambda_.Architecture.ARM_64)
    local_template = local_app.synth().get_stack_by_name("S").template
    (local_layer,) = [r for r in local_template["Resources"].values() if r["Type"] == "AWS::Lambda::LayerVersion"]
    assert local_layer["Properties"]["Content"] == layer["Properties"]["Content"]
    # ... and what is uploaded under that key is the bundle made in the Lambda build image, uploaded once: the
    # PythonLayerVersion's own registration (under the CDK's hash of the bundling options) went with its scratch
    # stack.
    manifest = json.loads((tmp_path / "out" / "S.assets.json").read_text())
    key = layer["Properties"]["Content"]["S3Key"]
    (uploaded,) = [a for a in manifest["files"].values() if a["source"]["packaging"] == "zip"]
    assert [d["objectKey"] for d in uploaded["destinations"].values()] == [key]
    bundle = tmp_path / "out" / uploaded["source"]["path"]
    assert (bundle / "python" / "built_in_docker.txt").exists()
    assert [s for s in json.loads((tmp_path / "out" / "manifest.json").read_text())["artifacts"]
            if s.endswith(".assets")] == ["S.assets"], "the scratch stack was synthesized"


def test_the_docker_builder_bundles_a_function_with_python_function(stand_in_docker, tmp_path):
    calls = stand_in_docker(info_ok=True)
    env = {**os.environ, "LAYERKIT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    entry = ROOT / "lambdas" / "order_total"
    proc = subprocess.run([sys.executable, "-c", SYNTH_FUNCTION_WITH_DOCKER, str(entry), str(tmp_path / "out")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["builder"], result["python_function"], result["bundled_handler"]) == (
        "docker", True, "handler.handler")
    commands = recorded(calls)
    build = next(c for c in commands if c[0] == "build")
    assert "IMAGE=public.ecr.aws/sam/build-python3.12" in build  # PythonFunction's own image
    run = next(c for c in commands if c[0] == "run")
    mounts = [run[i + 1] for i, flag in enumerate(run) if flag == "-v"]
    source = Path(next(m.split(":")[0] for m in mounts if ":/asset-input" in m))
    # The function's code and one requirements.txt; its sample events never reach the image.
    assert sorted(p.name for p in source.iterdir()) == ["_layerkit", "handler.py"]
    assert (source / "_layerkit" / "requirements.txt").read_text() == "python-dateutil==2.9.0.post0\nsix==1.17.0\n"
    assert "--python-platform x86_64-manylinux_2_34 --target /asset-output -r requirements.txt" in run[-1]
    dropped = next(c for c in run[-1].split(" && ") if c.startswith("rm -rf "))
    assert "/asset-output/requirements.txt" in dropped.split()
    assert "--invalidation-mode unchecked-hash -s /asset-output -p /var/task /asset-output" in run[-1]

    from layerkit.assemble.local_build import build_function
    from layerkit.core.targets import Target

    local = build_function(entry, Target("python3.12", "x86_64"), cache_dir=tmp_path / "cache")
    assert local.asset_hash == result["asset_hash"]
    (function,) = [r for r in result["template"]["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert function["Properties"]["Handler"] == "handler.handler"
    manifest = json.loads((tmp_path / "out" / "S.assets.json").read_text())
    (uploaded,) = [a for a in manifest["files"].values() if a["source"]["packaging"] == "zip"]
    assert [d["objectKey"] for d in uploaded["destinations"].values()] == [function["Properties"]["Code"]["S3Key"]]


def test_a_build_image_docker_cannot_have_is_said_once_per_app_with_its_pull_command(lambda_images, kit_cache,
                                                                                     tmp_path):
    """Docker asked for, for python3.12, whose build image the engine has not and cannot pull here: the first
    layer that needs it says so, with the pull command; the second says nothing more."""
    app = App(outdir=str(tmp_path / "cdk.out"), context={"layerkit:builder": "docker"})
    stack = Stack(app, "S")
    first = SharedPythonLayer(stack, "First", entry=LAYERS / "my_layer", runtime=lambda_.Runtime.PYTHON_3_12)
    second = SharedPythonLayer(stack, "Second", entry=LAYERS / "another_layer", runtime=lambda_.Runtime.PYTHON_3_12)
    message = assert_told(stack, "", on="S/First")
    assert "public.ecr.aws/sam/build-python3.12 for linux/amd64 is not in the Docker engine and cannot be pulled" \
        in message
    assert "docker pull --platform linux/amd64 public.ecr.aws/sam/build-python3.12" in message
    assert (first.broken, second.broken) == (True, True)
