"""A cdk.out read as hostile input (layerkit.assembly): assets that lead outside the assembly, host folders, malformed
files and zips that lie are each refused in one line, before anything is read or mounted."""

from __future__ import annotations

import json
import os
import stat

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from tests.conftest import app_context
from tests.helpers import cli, write_file
from tests.hostile_assembly import (
    SECRET,
    _artifacts_a_list,
    _deep,
    _export_a_string,
    _layers_a_string,
    _memory_size_big,
    _properties_a_string,
    _resources_a_list,
    _zip,
    assert_one_line,
    copy_of,
    layer_asset,
    point_layer_at,
    replace_layer_asset,
    resource_of,
    save,
    template,
)


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


def test_a_layer_that_is_not_a_zip_is_one_line(clean, tmp_path):
    out = copy_of(clean, tmp_path)
    replace_layer_asset(out, lambda path: path.write_bytes(b"PK\x03\x04 not really a zip"))
    for command in (["describe"], ["check"], ["invoke", "S/Fn", "--backend", "sandbox"]):
        assert_one_line(cli(*command, "--assembly", str(out)), "is not a readable zip")


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


def test_a_stages_nested_assembly_is_read_and_its_folder_must_stay_inside(tmp_path, kit_cache):
    from aws_cdk import Stage

    write_file(tmp_path / "fn" / "index.py", "def handler(event, context):\n    return 'from the stage'\n")
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
