"""The template `sam local invoke` runs (layerkit.assembly.sam_template): the layers a function uses from other stacks
copied in with their assets, and the real SAM CLI running it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App

from tests.conftest import ROOT, app_context


@pytest.fixture(scope="module", params=["ssm", "export"])
def synthesized(request, kit_cache, tmp_path_factory) -> Path:
    from app import build

    outdir = tmp_path_factory.mktemp(f"cdk.out-{request.param}")
    build(App(outdir=str(outdir), context=app_context(layerkit__sharing=request.param))).app.synth()
    return outdir


def sam_template(assembly: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerkit.cli", "sam-template", "lambda-layers-example-order-total",
                           "--assembly", str(assembly), *args], capture_output=True, text=True, timeout=120)


def _bridge_network() -> bool:
    docker = shutil.which("docker")
    return docker is not None and subprocess.run([docker, "network", "inspect", "bridge"],
                                                 capture_output=True).returncode == 0


def test_the_functions_layers_are_copied_in_with_their_assets(synthesized, tmp_path):
    out = tmp_path / "elsewhere" / "template.json"
    result = sam_template(synthesized, "-o", str(out))
    assert result.returncode == 0, result.stderr
    template = json.loads(out.read_text())
    resources = template["Resources"]
    (function_id,) = [lid for lid, r in resources.items() if r["Type"] == "AWS::Lambda::Function"]
    function = resources[function_id]
    layer_refs = function["Properties"]["Layers"]
    assert len(layer_refs) == 2
    for reference in layer_refs:
        copied = resources[reference["Ref"]]  # a Ref to a layer version of this template: what SAM mounts
        assert copied["Type"] == "AWS::Lambda::LayerVersion"
        assert copied["Metadata"]["aws:asset:property"] == "Content"
        asset = (out.parent / copied["Metadata"]["aws:asset:path"]).resolve()
        assert asset.is_file()
        assert asset.parent == synthesized.resolve()
        assert copied["Metadata"]["layerkit:copied-from"].startswith("lambda-layers-example/")
    code = (out.parent / function["Metadata"]["aws:asset:path"]).resolve()
    assert code.exists()
    text = json.dumps(template)
    assert "Fn::ImportValue" not in text
    assert "/layers/my_layer/arn" not in text
    assert not [p for p in template.get("Parameters", {}).values() if "layers" in str(p.get("Default", ""))]


def test_written_to_standard_output_the_paths_are_relative_to_the_current_folder(synthesized):
    result = sam_template(synthesized)
    assert result.returncode == 0, result.stderr
    template = json.loads(result.stdout)
    paths = [r["Metadata"]["aws:asset:path"] for r in template["Resources"].values()
             if r.get("Metadata", {}).get("aws:asset:path")]
    assert paths
    assert all((Path.cwd() / p).exists() for p in paths)


def test_an_unknown_stack_names_the_known_ones(synthesized):
    result = subprocess.run([sys.executable, "-m", "layerkit.cli", "sam-template", "nope", "--assembly",
                             str(synthesized)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no stack 'nope'" in result.stderr
    assert "lambda-layers-example-order-total" in result.stderr


@pytest.mark.skipif(not _bridge_network(), reason="AWS SAM CLI attaches its container to Docker's bridge network, "
                                                  "which this engine has none of (make docker-engine runs it without)")
def test_the_real_sam_cli_invokes_the_function_with_its_layers(synthesized, tmp_path, request):
    """AWS SAM CLI (pinned in requirements-samcli.txt, its own environment) runs the template. It builds FROM
    public.ecr.aws/lambda/python:3.13-x86_64, which the stand-ins tag too."""
    request.getfixturevalue("lambda_images")
    venv = ROOT / ".venv-samcli"
    if not (venv / "bin" / "sam").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(ROOT / "requirements-samcli.txt")],
                       check=True)
    from aws_cdk import aws_lambda as lambda_

    import app as example_app
    from app import build

    outdir = tmp_path / "cdk.out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(example_app, "RUNTIME", lambda_.Runtime.PYTHON_3_13)
        build(App(outdir=str(outdir), context=app_context())).app.synth()
    template = tmp_path / "template.json"
    assert sam_template(outdir, "-o", str(template)).returncode == 0
    event = ROOT / "lambdas" / "order_total" / "events" / "order.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run([str(venv / "bin" / "sam"), "local", "invoke", "-t", str(template), "--event", str(event),
                             "--skip-pull-image", "Function"], capture_output=True, text=True, timeout=600, env=env)
    assert '"total": "102.30"' in result.stdout, result.stderr[-3000:]


def test_the_stand_in_lambda_image_carries_the_tag_with_the_architecture(lambda_images, docker_engine):
    """AWS publishes public.ecr.aws/lambda/python:3.13-x86_64 beside :3.13; AWS SAM CLI builds FROM the former."""
    from layerkit.core.targets import host_architecture

    tag = f"{lambda_images['lambda']}-{host_architecture()}"
    inspected = subprocess.run([docker_engine, "image", "inspect", "--format", "{{.Id}}", tag, lambda_images["lambda"]],
                               capture_output=True, text=True)
    assert inspected.returncode == 0, inspected.stderr
    ids = inspected.stdout.split()
    assert len(ids) == 2
    assert ids[0] == ids[1]
