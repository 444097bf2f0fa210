"""A layer owned by another app (layerkit.constructs.external): used, checked and invoked without its source."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

import layerkit
from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assembly import Assembly
from tests.aws_standin import StandInAws
from tests.conftest import app_context, synth_messages, write
from tests.helpers import ARN, PARAMETER, PY312, PY313, cli


@pytest.fixture(scope="module")
def apps(tmp_path_factory, kit_cache):
    """An owner app publishing a layer in SSM, and a consumer app that knows only the parameter's name."""
    src = write(tmp_path_factory.mktemp("src"), {
        "common/python/common.py": "WHO = 'the platform team'\n",
        "fn/index.py": "import common\n\ndef handler(e, c):\n    return common.WHO\n"})
    owner_out, consumer_out = tmp_path_factory.mktemp("owner.out"), tmp_path_factory.mktemp("consumer.out")
    owner = App(outdir=str(owner_out), context=app_context())
    shared = SharedPythonLayer(Stack(owner, "platform"), "Common", entry=src / "common", runtime=PY312,
                               parameter_name=PARAMETER)
    shared.grant_usage(organization_id="o-abc123def45")
    owner.synth()
    consumer = App(outdir=str(consumer_out), context=app_context())
    stack = Stack(consumer, "team")
    common = SharedPythonLayer.from_parameter(stack, "Common", PARAMETER, runtime=PY312)
    PythonFunction(stack, "Fn", entry=src / "fn", runtime=PY312, layers=[common])
    pinned = SharedPythonLayer.from_layer_version_arn(stack, "PinnedLayer", ARN, runtime=PY312)
    PythonFunction(stack, "Pinned", entry=src / "fn", runtime=PY312, layers=[pinned])
    layerkit.check(consumer)
    messages = synth_messages(consumer)
    return owner_out, consumer_out, messages


def test_the_consumer_synthesizes_and_passes_the_check_saying_once_what_it_cannot_check(apps):
    _, _, messages = apps
    assert [m for m in messages if m[1] == "error"] == []
    notes = [m for m in messages if "[layerkit:owned-elsewhere]" in m[2]]
    assert len(notes) == 2  # one per layer owned elsewhere, not one per function
    assert f"layer {PARAMETER} is owned elsewhere" in notes[0][2] + notes[1][2]
    assert "its size and contents are not" in notes[0][2]


def test_a_function_of_another_target_is_refused_at_synth(tmp_path, kit_cache):
    cdk_app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())
    stack = Stack(cdk_app, "team")
    common = SharedPythonLayer.from_parameter(stack, "Common", PARAMETER, runtime=PY312)
    code = write(tmp_path / "fn", {"index.py": "def handler(e, c):\n    return 1\n"})
    with pytest.raises(RuntimeError, match=r"incompatible with this layer \(python3\.13 is not in \[python3\.12\]\)"):
        lambda_.Function(stack, "Runtime", runtime=PY313, handler="index.handler",
                         code=lambda_.Code.from_asset(str(code)), layers=[common.version_for(stack)])
    # The CDK knows runtimes; the kit checks the architecture it was built for too.
    lambda_.Function(stack, "Arm", runtime=PY312, architecture=lambda_.Architecture.ARM_64, handler="index.handler",
                     code=lambda_.Code.from_asset(str(code)), layers=[common.version_for(stack)])
    layerkit.check(cdk_app)
    errors = [m for m in synth_messages(cdk_app) if m[1] == "error" and "[layerkit:architecture-mismatch]" in m[2]]
    assert len(errors) == 1
    assert f"layer {PARAMETER} is built for x86_64, the function is arm64" in errors[0][2]


def test_describe_and_check_upgrade_list_it_as_owned_elsewhere(apps):
    _, consumer_out, _ = apps
    described = cli("describe", "--assembly", str(consumer_out))
    assert described.returncode == 0, described.stderr
    assert f"{PARAMETER} (via ssm, owned elsewhere)" in described.stdout
    upgrade = cli("check-upgrade", str(consumer_out), str(consumer_out))
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"Layer {PARAMETER} is owned elsewhere" in upgrade.stdout


def test_invoke_takes_the_layer_from_the_owner_apps_assembly(apps):
    owner_out, consumer_out, _ = apps
    result = cli("invoke", "--assembly", str(consumer_out), "team/Fn", "--backend", "sandbox",
                 "--layers-from", str(owner_out))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "the platform team"


def test_invoke_without_the_layer_names_the_ways_to_give_it(apps, tmp_path):
    _, consumer_out, _ = apps
    env = {"AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_EC2_METADATA_DISABLED": "true"}
    result = cli("invoke", "--assembly", str(consumer_out), "team/Fn", "--backend", "sandbox", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"layerkit: error: function team/Fn uses layer {PARAMETER}, owned elsewhere: pass --layers-from the owner "
        f"app's cdk.out, or --layer {PARAMETER}=PATH (a zip or folder of it), or configure AWS credentials that may "
        "read it")


def test_invoke_takes_a_layer_zip_given_by_name(apps):
    owner_out, consumer_out, _ = apps
    (layer,) = Assembly.load(owner_out).layers()
    result = cli("invoke", "--assembly", str(consumer_out), "team/Pinned", "--backend", "sandbox",
                 "--layer", f"{ARN}={layer.asset}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "the platform team"


def test_with_credentials_the_layer_version_is_downloaded_by_arn_and_kept(apps, tmp_path):
    owner_out, consumer_out, _ = apps
    (layer,) = Assembly.load(owner_out).layers()
    aws = StandInAws(layer.asset, tmp_path, ARN, PARAMETER)
    try:
        env = {**aws.environment(tmp_path), "LAYERKIT_CACHE_DIR": str(tmp_path / "cache")}
        first = cli("invoke", "--assembly", str(consumer_out), "team/Fn", "--backend", "sandbox", env=env)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout) == "the platform team"
        assert aws.requests == ["AmazonSSM.GetParameter", "/2018-10-31/layers", "/layer.zip"]
        second = cli("invoke", "--assembly", str(consumer_out), "team/Pinned", "--backend", "sandbox", env=env)
        assert second.returncode == 0, second.stderr
        assert aws.requests == ["AmazonSSM.GetParameter", "/2018-10-31/layers", "/layer.zip"], \
            "the version downloaded once was downloaded again (it is kept by its ARN)"
    finally:
        aws.close()


def test_grant_usage_gives_every_version_to_the_organization(apps):
    owner_out, _, _ = apps
    template = json.loads((owner_out / "platform.template.json").read_text())
    permissions = [r["Properties"] for r in template["Resources"].values()
                   if r["Type"] == "AWS::Lambda::LayerVersionPermission"]
    assert len(permissions) == 1
    assert (permissions[0]["Principal"], permissions[0]["OrganizationId"], permissions[0]["Action"]) == (
        "*", "o-abc123def45", "lambda:GetLayerVersion")
