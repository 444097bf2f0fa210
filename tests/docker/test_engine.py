"""What this machine's Docker engine can build (layerkit.docker.engine), and the example's Dockerfile installing the uv
the local build runs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT


def test_the_probe_runs_the_image_for_the_platform_and_sees_an_engine_without_emulation(either_engine, tmp_path):
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
    subprocess.run(["docker", "load", "-i", str(bundle)], check=True, capture_output=True)
    try:
        refusal = engine.cannot_build(image, "linux/arm64", "aarch64", "none", "https://pypi.org/simple")
    finally:
        subprocess.run(["docker", "rmi", "-f", image], capture_output=True)
    assert refusal is not None
    assert "the Docker engine cannot run linux/arm64 containers" in refusal.reason
    assert "exec format error" in refusal.reason
    assert "QEMU" in refusal.fix


def test_the_example_dockerfile_installs_the_uv_the_local_build_runs():
    pinned = next(line.split("==")[1] for line in (ROOT / "requirements.txt").read_text().splitlines()
                  if line.startswith("uv=="))
    assert f"ARG UV_VERSION={pinned}" in (ROOT / "docker" / "Dockerfile").read_text()
