"""A plain app synthesized once, and the ways an attacker edits a copy of its cdk.out (its fixtures are registered
where the tests need them)."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from tests.conftest import app_context
from tests.helpers import write_file

WALK_HANDLER = """
import os

def handler(event, context):
    found = {}
    for root in ("/opt", "/var/task"):
        for folder, _, files in os.walk(root):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    with open(path, errors="replace") as file:
                        found[path] = file.read(200)
                except OSError as error:
                    found[path] = str(error)
    return found
"""


SECRET = "aws_secret_access_key = host-secret-of-this-machine"


@pytest.fixture(scope="session")
def clean(tmp_path_factory, kit_cache) -> Path:
    """A plain app (a folder layer and a function, as lambda.Code.from_asset stages them) synthesized once."""
    src = tmp_path_factory.mktemp("src")
    write_file(src / "layer" / "python" / "helper.py", "VALUE = 1\n")
    write_file(src / "fn" / "index.py", WALK_HANDLER)
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(outdir=str(outdir), context=app_context())
    stack = Stack(app, "S")
    layer = lambda_.LayerVersion(stack, "Layer", code=lambda_.Code.from_asset(str(src / "layer")))
    lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                     code=lambda_.Code.from_asset(str(src / "fn")), layers=[layer])
    app.synth()
    return outdir


@pytest.fixture
def host_secret(tmp_path) -> Path:
    """A folder of this machine that no assembly may reach (as ~/.aws is)."""
    folder = tmp_path / "host" / ".aws"
    write_file(folder / "credentials", SECRET + "\n")
    return folder


def copy_of(clean: Path, tmp_path: Path) -> Path:
    out = tmp_path / "cdk.out"
    shutil.copytree(clean, out, symlinks=True)
    return out


def template(out: Path) -> dict:
    return json.loads((out / "S.template.json").read_text())


def save(out: Path, data: dict) -> None:
    (out / "S.template.json").write_text(json.dumps(data))


def resource_of(data: dict, kind: str) -> dict:
    return next(r for r in data["Resources"].values() if r["Type"] == kind)


def layer_asset(out: Path) -> Path:
    """The file or folder the asset manifest uploads as the layer's code."""
    key = resource_of(template(out), "AWS::Lambda::LayerVersion")["Properties"]["Content"]["S3Key"]
    manifest = json.loads((out / "S.assets.json").read_text())
    return next(out / asset["source"]["path"] for asset in manifest["files"].values()
                if any(d["objectKey"] == key for d in asset["destinations"].values()))


def point_layer_at(out: Path, path: str) -> None:
    """The layer's asset, as the asset manifest names it, becomes ``path``."""
    manifest_path = out / "S.assets.json"
    manifest = json.loads(manifest_path.read_text())
    data = template(out)
    key = resource_of(data, "AWS::Lambda::LayerVersion")["Properties"]["Content"]["S3Key"]
    for asset in manifest["files"].values():
        if any(d["objectKey"] == key for d in asset["destinations"].values()):
            asset["source"]["path"] = path
    manifest_path.write_text(json.dumps(manifest))


def assert_one_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# -- malformed assemblies ------------------------------------------------------------------------------------
def _resources_a_list(out: Path) -> None:
    data = template(out)
    data["Resources"] = list(data["Resources"].values())
    save(out, data)


def _artifacts_a_list(out: Path) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["artifacts"] = list(manifest["artifacts"].values())
    (out / "manifest.json").write_text(json.dumps(manifest))


def _properties_a_string(out: Path) -> None:
    data = template(out)
    resource_of(data, "AWS::Lambda::Function")["Properties"] = "runtime python3.12"
    save(out, data)


def _memory_size_big(out: Path) -> None:
    data = template(out)
    resource_of(data, "AWS::Lambda::Function")["Properties"]["MemorySize"] = "big"
    save(out, data)


def _deep(out: Path) -> None:
    (out / "S.template.json").write_text('{"Resources": ' + "[" * 200_000 + "]" * 200_000 + "}")


def _layers_a_string(out: Path) -> None:
    data = template(out)
    resource_of(data, "AWS::Lambda::Function")["Properties"]["Layers"] = "arn:aws:lambda:us-east-1:1:layer:x:1"
    save(out, data)


def _export_a_string(out: Path) -> None:
    data = template(out)
    data["Outputs"] = {"Out": {"Value": {"Ref": "x"}, "Export": "just-a-name"}}
    resource_of(data, "AWS::Lambda::Function")["Properties"]["Layers"] = [{"Fn::ImportValue": "just-a-name"}]
    save(out, data)


def _zip(path: Path, entries: list[tuple[str, bytes, int]]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            archive.writestr(info, data)


def replace_layer_asset(out: Path, write_asset) -> Path:
    """The layer's asset replaced by a zip that ``write_asset`` writes."""
    zipped = out / "asset.hostile.zip"
    write_asset(zipped)
    point_layer_at(out, zipped.name)
    return zipped
