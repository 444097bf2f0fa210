"""``auto`` on the project's own engine (no bridge network, no arm64 emulation, python3.13 stand-in images only):
one builder for the whole app, Docker only where it can make every target, one warning saying why; a Docker
build that fails says why in one line."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assemble.local_build import build_layer
from layerkit.assembly import Assembly
from layerkit.core.errors import LayerkitError
from layerkit.core.targets import Target
from layerkit.invoke.session import invoke_function
from tests.conftest import LAYERS, ROOT, synth_messages

PY312, PY313 = lambda_.Runtime.PYTHON_3_12, lambda_.Runtime.PYTHON_3_13
ARCHITECTURES = {"x86_64": lambda_.Architecture.X86_64, "arm64": lambda_.Architecture.ARM_64}
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}


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
    return {ELF_MACHINES[int.from_bytes(blob[18:20], "little")] for blob in blobs}


def files_of(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def zip_files(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return sorted(n for n in archive.namelist() if not n.endswith("/"))


@pytest.fixture
def pydantic_function(tmp_path: Path) -> Path:
    folder = tmp_path / "uses_pydantic"
    folder.mkdir()
    (folder / "index.py").write_text(
        "import platform, pydantic, my_layer\n\n"
        "def handler(event, context):\n"
        "    return {'pydantic': pydantic.VERSION, 'machine': platform.machine()}\n")
    return folder


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
    assert machines_in(layers["arm64"].versions[0].content) == {"aarch64"}
    assert machines_in(layers["x86_64"].versions[0].content) == {"x86_64"}
    if order[0] == "x86_64":
        # Docker bundled the x86_64 layer first; the app turned local and built it again, in place.
        assert "1 construct bundled in Docker before this one was built again without it" in warning
        local = build_layer(LAYERS / "my_layer", Target("python3.13", "x86_64"), cache_dir=kit_cache)
        assert files_of(layers["x86_64"].versions[0].content) == zip_files(local.zip)
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


def test_where_the_engine_can_build_every_target_auto_bundles_in_docker_on_the_host_network(
        lambda_images, kit_cache, tmp_path):
    app = App(outdir=str(tmp_path / "cdk.out"))  # no network given: the engine has no bridge, so host
    layer = SharedPythonLayer(Stack(app, "Layers"), "Layer", entry=LAYERS / "my_layer", runtime=PY313)
    messages = synth_messages(app)
    assert layer.builder == "docker"
    assert not [text for _, _, text in messages if "without Docker" in text]
    local = build_layer(LAYERS / "my_layer", Target("python3.13", "x86_64"), cache_dir=kit_cache)
    assert files_of(layer.versions[0].content) == zip_files(local.zip)


def test_a_failing_docker_build_is_one_line_with_the_fix(lambda_images, kit_cache, tmp_path):
    folder = tmp_path / "no_network"
    (folder / "python").mkdir(parents=True)
    (folder / "python" / "mod.py").write_text("X = 1\n")
    (folder / "requirements.txt").write_text("six==1.17.0\n")
    app = App(outdir=str(tmp_path / "cdk.out"),
              context={"layerkit:builder": "docker", "layerkit:docker-network": "none"})
    with pytest.raises(LayerkitError) as raised:
        SharedPythonLayer(Stack(app, "Layers"), "Layer", entry=folder, runtime=PY313)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("layer no_network: the Docker build for python3.13 on x86_64 failed: error:"), message
    assert "Temporary failure in name resolution" in message  # uv's deepest cause, beside its first line
    assert "set docker_network='host' (or cdk synth -c layerkit:docker-network=host)" in message
    log = Path(message.rsplit("(the whole output: ", 1)[1].rstrip(")"))
    assert "six" in log.read_text()  # the details are kept, not shown


def test_the_probe_runs_the_image_for_the_platform_and_sees_an_engine_without_emulation(docker_engine, tmp_path):
    """An arm64 image (one aarch64 ``python`` that exits), loaded into an x86_64 engine without QEMU: the probe
    runs it, as the bundling would, and reports what stops it."""
    import hashlib
    import io
    import platform
    import struct
    import subprocess
    import tarfile

    from layerkit.docker import engine

    if platform.machine() != "x86_64":
        pytest.skip("the engine runs arm64 images natively here")
    code = bytes.fromhex("000080d2" "a80b80d2" "010000d4")  # mov x0, #0; mov x8, #93 (exit); svc #0
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\0" * 8 + struct.pack(
        "<HHIQQQIHHHHHH", 2, 183, 1, 0x400000 + 120, 64, 0, 0, 64, 56, 1, 0, 0, 0)
    size = 120 + len(code)
    program = header + struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, size, size, 0x1000) + code
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as archive:
        info = tarfile.TarInfo("python")
        info.size, info.mode = len(program), 0o755
        archive.addfile(info, io.BytesIO(program))
    diff_id = "sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()
    config = json.dumps({"architecture": "arm64", "os": "linux", "config": {"Env": ["PATH=/"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    image = f"layerkit-test/arm64-probe:{hashlib.sha256(config).hexdigest()[:12]}"
    bundle = tmp_path / "image.tar"
    with tarfile.open(bundle, "w") as archive:
        manifest = json.dumps([{"Config": "config.json", "RepoTags": [image], "Layers": ["layer.tar"]}]).encode()
        for name, payload in (("config.json", config), ("layer.tar", layer.getvalue()), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    subprocess.run([docker_engine, "load", "-i", str(bundle)], check=True, capture_output=True)
    try:
        refusal = engine.cannot_build(image, "linux/arm64", "aarch64", "none", "https://pypi.org/simple")
    finally:
        subprocess.run([docker_engine, "rmi", "-f", image], capture_output=True)
    assert refusal is not None
    assert "the Docker engine cannot run linux/arm64 containers" in refusal.reason
    assert "exec format error" in refusal.reason
    assert "QEMU" in refusal.fix


def test_the_example_dockerfile_installs_the_uv_the_local_build_runs():
    pinned = next(line.split("==")[1] for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("uv=="))
    assert f"ARG UV_VERSION={pinned}" in (ROOT / "docker" / "Dockerfile").read_text()
