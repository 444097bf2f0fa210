"""Lambda's 250 MB (layerkit.rules.size): near it warns, over it stops, saying what would make it fit; a file over it
is refused before it is read."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

import layerkit
from layerkit import PythonFunction
from layerkit.assemble.local_build import build_layer
from layerkit.core.errors import LayerSourceError
from tests.conftest import app_context, make_wheel, synth_messages, write
from tests.helpers import (
    PY312,
    TARGET_312,
    Checked,
    cli_with_peak_memory,
    one_line,
    only,
    quiet,
    sparse,
    wheel_with,
)


@pytest.fixture(scope="module")
def big_zip(tmp_path_factory) -> Path:
    """A layer of 210 MB unzipped (zeros compress to almost nothing): 84% of Lambda's limit."""
    path = tmp_path_factory.mktemp("big") / "big.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        chunk = bytes(105 * 1024 * 1024)
        archive.writestr("python/data/a.bin", chunk)
        archive.writestr("python/data/b.bin", chunk)
    return path


# -- 6. Lambda's limits in every command, and the tools to meet them -------------------------------------------


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
    PythonFunction(stack, "Heavy", entry=entry, runtime=PY312, layers=[layer], bytecode=False)
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
