"""The example app through a change, in both sharing modes: one layer version per layer, an unchanged layer never a new
version, a changed one a new version and nothing else, check-upgrade's verdict."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App
from aws_cdk.assertions import Template

from app import LAYERS_STACK, build
from layerkit.assembly import Assembly
from layerkit.checks.upgrade import check_upgrade
from tests.conftest import LAYERS, app_context

CONSUMERS = ["lambda-layers-example-order-total", "lambda-layers-example-text-stats"]


def synth(outdir: Path, sharing: str, layers_dir: Path = LAYERS) -> Assembly:
    app = App(outdir=str(outdir), context=app_context(layerkit__sharing=sharing))
    build(app, layers_dir)
    app.synth()
    return Assembly.load(outdir)


@pytest.fixture(scope="module")
def assemblies(tmp_path_factory, kit_cache) -> dict[str, Assembly]:
    """Both modes, each synthesized before and after a one-byte change to my_layer."""
    changed = tmp_path_factory.mktemp("changed") / "layers"
    shutil.copytree(LAYERS, changed)
    module = changed / "my_layer" / "python" / "my_layer.py"
    module.write_bytes(module.read_bytes().replace(b"256 * 1024", b"255 * 1024"))
    # A pin the layer changes that no function installs (pydantic 2.14 takes annotated-types 0.7 as well).
    repinned = tmp_path_factory.mktemp("repinned") / "layers"
    shutil.copytree(LAYERS, repinned)
    requirements = repinned / "my_layer" / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("annotated-types==0.8.0", "annotated-types==0.7.0"))
    result = {}
    for mode in ("ssm", "export"):
        result[f"{mode}-before"] = synth(tmp_path_factory.mktemp(f"{mode}-before"), mode)
        result[f"{mode}-again"] = synth(tmp_path_factory.mktemp(f"{mode}-again"), mode)
        result[f"{mode}-after"] = synth(tmp_path_factory.mktemp(f"{mode}-after"), mode, changed)
    result["ssm-repinned"] = synth(tmp_path_factory.mktemp("ssm-repinned"), "ssm", repinned)
    return result


def check_upgrade_cli(before: Assembly, after: Assembly) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "layerkit.cli", "check-upgrade", str(before.directory),
                           str(after.directory), "--json"], capture_output=True, text=True, timeout=120)
    return proc.returncode, json.loads(proc.stdout)


BLOCK_BOTO3 = "import sys; sys.modules['boto3'] = None; from layerkit.cli import main; sys.exit(main())"


@pytest.mark.parametrize("mode", ["ssm", "export"])
def test_one_layer_version_per_layer_in_the_whole_app(assemblies, mode):
    assembly = assemblies[f"{mode}-before"]
    layers = assembly.layers()
    assert sorted(layer.name for layer in layers) == ["another_layer", "my_layer"]
    assert {layer.stack for layer in layers} == {LAYERS_STACK}
    for function in assembly.functions():
        assert [use.via for use in function.layers] == [mode, mode]
        assert [use.layer.name for use in function.layers] == ["my_layer", "another_layer"]


def test_ssm_consumers_read_a_parameter_the_cli_never_skips(assemblies):
    assembly = assemblies["ssm-before"]
    producer = Template.from_json(assembly.stacks[LAYERS_STACK].template)
    producer.has_resource_properties("AWS::SSM::Parameter", {"Name": "/lambda-layers-example/layers/my_layer/arn"})
    for name in CONSUMERS:
        stack = assembly.stacks[name]
        parameters = stack.template["Parameters"]
        layer_params = [p for p in parameters.values() if p["Default"].startswith("/lambda-layers-example/layers/")]
        assert [p["Type"] for p in layer_params] == ["AWS::SSM::Parameter::Value<String>"] * 2
        # The CDK CLI skips a stack whose template did not change unless such a parameter lacks [cdk:skip]:
        # without this, `cdk deploy --all` would leave consumers on the old version.
        assert all("[cdk:skip]" not in p.get("Description", "") for p in layer_params)
        assert stack.dependencies == [LAYERS_STACK]  # --all deploys the producer first
        assert "Fn::ImportValue" not in json.dumps(stack.template)
        # Resolving the parameter is CloudFormation's job at deploy time: the function is granted nothing for it.
        assert "ssm:" not in json.dumps(stack.template)


def test_export_consumers_import_the_layer_arn(assemblies):
    assembly = assemblies["export-before"]
    for name in CONSUMERS:
        layers = assembly.stacks[name].template["Resources"]
        (function,) = [r for r in layers.values() if r["Type"] == "AWS::Lambda::Function"]
        assert all("Fn::ImportValue" in ref for ref in function["Properties"]["Layers"])


def test_a_changed_layer_passes_in_ssm_mode(assemblies):
    code, report = check_upgrade_cli(assemblies["ssm-before"], assemblies["ssm-after"])
    assert code == 0
    assert report["export_locks"] == []
    (change,) = report["layers"]
    assert (change["name"], change["change"]) == ("my_layer", "new version")
    assert sorted(f["function"] for f in change["functions"]) == [f"{c}/Function" for c in CONSUMERS]
    assert {f["via"] for f in change["functions"]} == {"ssm"}


def test_a_changed_layer_is_blocked_in_export_mode_naming_export_and_consumers(assemblies):
    code, report = check_upgrade_cli(assemblies["export-before"], assemblies["export-after"])
    assert code == 1
    (lock,) = report["export_locks"]
    assert lock["export"].startswith("lambda-layers-example:ExportsOutputRefMyLayer")
    assert lock["producer"] == LAYERS_STACK
    assert lock["consumers"] == CONSUMERS
    assert "SSM sharing" in lock["fix"]
    (change,) = report["layers"]
    assert (change["name"], change["change"]) == ("my_layer", "new version")
    assert sorted(f["function"] for f in change["functions"]) == [f"{c}/Function" for c in CONSUMERS]


def test_a_layer_pin_change_is_one_new_layer_version_and_nothing_else(assemblies):
    before, after = assemblies["ssm-before"], assemblies["ssm-repinned"]
    assert {f.id: f.code_s3_key for f in after.functions()} == {f.id: f.code_s3_key for f in before.functions()}
    for name in CONSUMERS:  # not a byte of the functions' stacks changes: the new version comes through SSM
        assert after.stacks[name].template == before.stacks[name].template
    code, report = check_upgrade_cli(before, after)
    assert code == 0
    assert [(c["name"], c["change"]) for c in report["layers"]] == [("my_layer", "new version")]
    assert report["functions"] == []


def test_the_blocked_report_reads_like_cloudformations_refusal(assemblies):
    proc = subprocess.run([sys.executable, "-m", "layerkit.cli", "check-upgrade",
                           str(assemblies["export-before"].directory), str(assemblies["export-after"].directory)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "cannot be updated as it is in use by lambda-layers-example-order-total" in proc.stdout
    assert "Layer my_layer (lambda-layers-example/MyLayer/Layer) gets a new version" in proc.stdout


@pytest.mark.parametrize("mode", ["ssm", "export"])
def test_nothing_changed_means_no_new_layer_version(assemblies, mode):
    report = check_upgrade(assemblies[f"{mode}-before"], assemblies[f"{mode}-again"])
    assert report.layers == []
    assert report.locks == []
    code, _ = check_upgrade_cli(assemblies[f"{mode}-before"], assemblies[f"{mode}-again"])
    assert code == 0


def test_old_layer_versions_are_retained_for_rollouts_and_rollbacks(assemblies):
    template = assemblies["ssm-before"].stacks[LAYERS_STACK].template
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::LayerVersion":
            assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain")


@pytest.mark.parametrize(("with_boto3", "region", "expected"), [
    (True, "AWS_DEFAULT_REGION", "layerkit: error: cannot read the deployed templates (Unable to locate credentials); "
                                 "configure AWS credentials and a region, or compare two synthesized assemblies "
                                 "(check-upgrade BEFORE AFTER)\n"),
    # AWS_REGION alone, as the AWS CLI and the other SDKs take it: a region, then the same missing credentials.
    (True, "AWS_REGION", "layerkit: error: cannot read the deployed templates (Unable to locate credentials); "
                         "configure AWS credentials and a region, or compare two synthesized assemblies "
                         "(check-upgrade BEFORE AFTER)\n"),
    (False, "AWS_DEFAULT_REGION", "layerkit: error: --against-deployed reads the deployed templates with boto3, "
                                  "which is not installed: 'pip install boto3', or compare two synthesized "
                                  "assemblies (check-upgrade BEFORE AFTER)\n"),
], ids=["no-credentials", "aws-region", "no-boto3"])
def test_against_deployed_says_what_it_needs(assemblies, tmp_path, with_boto3, region, expected):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true",
           region: "eu-west-1"}
    entry = ["-m", "layerkit.cli"] if with_boto3 else ["-c", BLOCK_BOTO3]
    proc = subprocess.run([sys.executable, *entry, "check-upgrade", "--against-deployed",
                           str(assemblies["ssm-before"].directory)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr == expected
