"""A cloud assembly is untrusted input: a ``cdk.out`` from someone else's pull request never has the kit read,
mount or copy a file of this machine, and a malformed one is one line in every command, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from tests.conftest import app_context

HANDLER = """
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


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerkit.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


@pytest.fixture(scope="module")
def clean(tmp_path_factory, kit_cache) -> Path:
    """A plain app (a folder layer and a function, as lambda.Code.from_asset stages them) synthesized once."""
    src = tmp_path_factory.mktemp("src")
    write(src / "layer" / "python" / "helper.py", "VALUE = 1\n")
    write(src / "fn" / "index.py", HANDLER)
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
    write(folder / "credentials", SECRET + "\n")
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


@pytest.mark.parametrize("how", ["absolute", "climbing", "link"])
def test_an_asset_that_leads_outside_the_assembly_is_never_read_nor_mounted(clean, tmp_path, host_secret, how,
                                                                             kit_cache):
    out = copy_of(clean, tmp_path)
    if how == "absolute":
        point_layer_at(out, str(host_secret))
    elif how == "climbing":
        point_layer_at(out, os.path.relpath(host_secret, out))
    else:
        (out / "asset.evil").symlink_to(host_secret)
        point_layer_at(out, "asset.evil")
    for command in (["invoke", "S/Fn", "--backend", "sandbox"], ["describe"], ["check"], ["sam-template", "S"],
                    ["invoke", "--list"]):
        result = cli(*command, "--assembly", str(out))
        assert_one_line(result, "leads outside the assembly")
        assert SECRET not in result.stdout
    assert not [p for p in kit_cache.rglob("credentials")], "a host file was copied into the kit's cache"


def test_a_function_asset_of_a_host_folder_is_not_mounted_as_var_task(clean, tmp_path, host_secret):
    out = copy_of(clean, tmp_path)
    data = template(out)
    function = resource_of(data, "AWS::Lambda::Function")
    function["Properties"]["Code"]["S3Key"] = "not-in-the-manifest.zip"
    function.setdefault("Metadata", {})["aws:asset:path"] = str(host_secret)
    save(out, data)
    assert_one_line(cli("invoke", "S/Fn", "--backend", "sandbox", "--assembly", str(out)),
                    "leads outside the assembly")


@pytest.mark.parametrize("where", ["/", "/proc"])
def test_an_asset_path_of_the_whole_machine_is_refused_before_anything_is_walked(clean, tmp_path, where):
    out = copy_of(clean, tmp_path)
    point_layer_at(out, where)
    for command in ("describe", "check"):
        assert_one_line(cli(command, "--assembly", str(out)), "leads outside the assembly")


def test_a_link_inside_a_folder_asset_that_leads_outside_is_refused(clean, tmp_path, host_secret):
    out = copy_of(clean, tmp_path)
    folder = layer_asset(out)
    (folder / "python" / "stolen").symlink_to(host_secret / "credentials")
    for command in (["invoke", "S/Fn", "--backend", "sandbox"], ["describe"], ["check"]):
        result = cli(*command, "--assembly", str(out))
        assert_one_line(result, "is a link to", "outside the asset")
        assert SECRET not in result.stdout


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


@pytest.mark.parametrize(("damage", "message"), [
    (_resources_a_list, "Resources is a list, not an object"),
    (_artifacts_a_list, "artifacts is a list, not an object"),
    (_properties_a_string, ".Properties is 'runtime python3.12', not an object"),
    (_memory_size_big, "MemorySize is 'big', not a whole number of MB"),
    (_deep, "nested deeper than any JSON the CDK writes"),
    (_layers_a_string, "Layers is 'arn:aws:lambda:us-east-1:1:layer:x:1', not a list"),
    (_export_a_string, "no stack of this assembly exports a layer as just-a-name"),
], ids=["resources-list", "artifacts-list", "properties-string", "memory-size", "deep", "layers-string",
        "export-string"])
def test_a_malformed_assembly_is_one_line_in_every_command(clean, tmp_path, damage, message):
    out = copy_of(clean, tmp_path)
    damage(out)
    for command in (["describe"], ["check"], ["invoke", "--list"], ["invoke", "S/Fn", "--backend", "sandbox"],
                    ["sam-template", "S"]):
        assert_one_line(cli(*command, "--assembly", str(out)), message)


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


def test_a_layer_that_is_not_a_zip_is_one_line(clean, tmp_path):
    out = copy_of(clean, tmp_path)
    replace_layer_asset(out, lambda path: path.write_bytes(b"PK\x03\x04 not really a zip"))
    for command in (["describe"], ["check"], ["invoke", "S/Fn", "--backend", "sandbox"]):
        assert_one_line(cli(*command, "--assembly", str(out)), "is not a readable zip")


def test_a_zip_whose_file_lies_under_its_own_link_is_refused_without_writing_through_it(clean, tmp_path, host_secret):
    out = copy_of(clean, tmp_path)
    replace_layer_asset(out, lambda path: _zip(path, [
        ("python/d", str(host_secret).encode(), stat.S_IFLNK | 0o777),
        ("python/d/evil.txt", b"written through the link", stat.S_IFREG | 0o644)]))
    assert_one_line(cli("invoke", "S/Fn", "--backend", "sandbox", "--assembly", str(out)),
                    "lies under 'python/d', which is a link there")
    assert sorted(p.name for p in host_secret.iterdir()) == ["credentials"]


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_a_zip_that_names_an_entry_twice_is_counted_twice_and_refused(clean, tmp_path):
    out = copy_of(clean, tmp_path)
    replace_layer_asset(out, lambda path: _zip(path, [("python/big.bin", b"x" * 1000, stat.S_IFREG | 0o644)] * 2))
    described = cli("describe", "--json", "--assembly", str(out))
    assert described.returncode == 0, described.stderr
    (layer,) = json.loads(described.stdout)["layers"]
    assert layer["unzipped_bytes"] == 2000
    checked = cli("check", "--assembly", str(out))
    assert checked.returncode == 1
    assert "[layerkit:duplicate-member]" in checked.stdout
    assert_one_line(cli("invoke", "S/Fn", "--backend", "sandbox", "--assembly", str(out)),
                    "holds 'python/big.bin' more than once")


def test_a_zip_layer_keeps_its_links_as_links_inside_the_sandbox(clean, tmp_path):
    """A link in a zip is laid out as a link (as Lambda extracts it), never followed on this machine: inside the
    sandbox it leads nowhere of this machine's."""
    out = copy_of(clean, tmp_path)
    replace_layer_asset(out, lambda path: _zip(path, [
        ("python/helper.py", b"VALUE = 2\n", stat.S_IFREG | 0o644),
        ("python/libfoo.so", b"libfoo.so.1", stat.S_IFLNK | 0o777),
        ("python/libfoo.so.1", b"\x7fELF not really", stat.S_IFREG | 0o755),
        ("python/root-link", b"/root", stat.S_IFLNK | 0o777)]))
    result = cli("invoke", "S/Fn", "--backend", "sandbox", "--assembly", str(out))
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["/opt/python/libfoo.so"].startswith("\x7fELF")
    assert not any(path.startswith("/opt/python/root-link/") for path in seen)


def test_the_freshness_check_never_reads_a_folder_outside_the_app_that_an_assembly_names(clean, tmp_path, host_secret):
    """The metadata of an assembly made elsewhere names folders of that machine: they are not read here."""
    out = copy_of(clean, tmp_path / "elsewhere")
    manifest = json.loads((out / "manifest.json").read_text())
    artifact = manifest["artifacts"]["S"]
    entry = {"type": "layerkit:function", "data": {
        "source": {"path": str(host_secret), "kind": "function", "excludes": [], "digest": "0" * 64}}}
    if extra := artifact.get("additionalMetadataFile"):  # where the CDK keeps a stack's construct metadata
        metadata = json.loads((out / extra).read_text())
        metadata.setdefault("/S/Fn", []).append(entry)
        (out / extra).write_text(json.dumps(metadata))
    else:
        artifact.setdefault("metadata", {}).setdefault("/S/Fn", []).append(entry)
        (out / "manifest.json").write_text(json.dumps(manifest))
    result = cli("invoke", "S/Fn", "--backend", "sandbox", "--assembly", str(out))
    assert result.returncode == 0, result.stderr
    assert "changed since" not in result.stderr


def test_two_folder_layers_never_write_through_the_first_ones_link(tmp_path, kit_cache, host_secret):
    """Layers given as folders (--layer NAME=FOLDER): the first's python/ is a link to a folder of this machine,
    the second ships python/evil.txt. Merging them into /opt must not write into that folder."""
    from layerkit import PythonFunction, SharedPythonLayer

    arns = [f"arn:aws:lambda:eu-west-1:111122223333:layer:{name}:1" for name in ("first", "second")]
    write(tmp_path / "fn" / "index.py", HANDLER)
    outdir = tmp_path / "cdk.out"
    app = App(outdir=str(outdir), context=app_context())
    stack = Stack(app, "S")
    layers = [SharedPythonLayer.from_layer_version_arn(stack, f"L{i}", arn, runtime=lambda_.Runtime.PYTHON_3_12)
              for i, arn in enumerate(arns)]
    PythonFunction(stack, "Fn", entry=tmp_path / "fn", runtime=lambda_.Runtime.PYTHON_3_12, layers=layers,
                   bytecode=False)
    app.synth()
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    (first / "python").symlink_to(host_secret)
    write(second / "python" / "evil.txt", "written through the link\n")
    result = cli("invoke", "S/Fn", "--backend", "sandbox", "--assembly", str(outdir),
                 "--layer", f"{arns[0]}={first}", "--layer", f"{arns[1]}={second}")
    assert_one_line(result, "python is a link to", "outside the asset")
    assert sorted(p.name for p in host_secret.iterdir()) == ["credentials"]


def test_a_stages_nested_assembly_is_read_and_its_folder_must_stay_inside(tmp_path, kit_cache):
    from aws_cdk import Stage

    write(tmp_path / "fn" / "index.py", "def handler(event, context):\n    return 'from the stage'\n")
    outdir = tmp_path / "cdk.out"
    app = App(outdir=str(outdir), context=app_context())
    stage = Stage(app, "Prod")
    lambda_.Function(Stack(stage, "S"), "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                     code=lambda_.Code.from_asset(str(tmp_path / "fn")))
    app.synth()
    listed = cli("invoke", "--list", "--assembly", str(outdir))
    assert listed.returncode == 0, listed.stderr
    (function_id,) = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    assert function_id == "Prod/S/Fn"
    invoked = cli("invoke", function_id, "--backend", "sandbox", "--assembly", str(outdir))
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(invoked.stdout) == "from the stage"
    manifest = json.loads((outdir / "manifest.json").read_text())
    nested = next(a for a in manifest["artifacts"].values() if a["type"] == "cdk:cloud-assembly")
    nested["properties"]["directoryName"] = "../.."
    (outdir / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line(cli("invoke", "--list", "--assembly", str(outdir)), "leads outside the assembly")
