"""The template `sam local invoke` runs (layerkit.assembly.sam_template): the layers a function uses from other stacks
copied in with their assets, and the real SAM CLI running it."""

from __future__ import annotations

import json
import os
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


#: Where make docker-engine runs the engine with a bridge: its network namespace (docker/engine.sh).
ENGINE_NETNS = "/run/netns/layerkit-docker"


def engine_side() -> list[str]:
    """How to run a client where the engine's containers and published ports are: on this machine for a user's
    Docker, inside its network namespace for the engine make docker-engine runs there."""
    if "layerkit-docker" in os.environ.get("DOCKER_HOST", "") and Path(ENGINE_NETNS).exists():
        return ["nsenter", f"--net={ENGINE_NETNS}"]
    return []


@pytest.fixture(scope="module")
def sam_cli(lambda_images) -> Path:
    """AWS SAM CLI, pinned in requirements-samcli.txt, in an environment of its own (.venv-samcli)."""
    venv = ROOT / ".venv-samcli"
    if not (venv / "bin" / "sam").exists():
        uv = Path(sys.executable).with_name("uv")
        subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "-r",
                        str(ROOT / "requirements-samcli.txt")], check=True, timeout=900)
    if subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True).returncode != 0:
        pytest.fail("AWS SAM CLI attaches its containers to Docker's bridge network, and this engine has none: run "
                    "the tests on the engine make docker-engine starts with one (DOCKER_HOST, as make test sets it)")
    return venv / "bin" / "sam"


@pytest.fixture(scope="module", params=["ssm", "export"])
def for_sam(request, kit_cache, tmp_path_factory) -> tuple[Path, str]:
    """The example synthesized for python3.13 (the stand-in images' runtime), in each sharing mode, as layerkit
    sam-template writes it: (template, the function's logical ID as it prints it)."""
    from aws_cdk import aws_lambda as lambda_

    import app as example_app
    from app import build

    outdir = tmp_path_factory.mktemp(f"cdk.out-313-{request.param}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(example_app, "RUNTIME", lambda_.Runtime.PYTHON_3_13)
        build(App(outdir=str(outdir), context=app_context(layerkit__sharing=request.param))).app.synth()
    template = outdir.parent / f"sam-{outdir.name}.json"
    written = sam_template(outdir, "-o", str(template))
    assert written.returncode == 0, written.stderr
    (logical_id,) = [line.rsplit(" ", 1)[1] for line in written.stderr.splitlines() if "sam local invoke" in line]
    return template, logical_id


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


def test_the_real_sam_cli_invokes_the_function_with_its_layers_from_another_stack(sam_cli, for_sam):
    """sam local invoke on layerkit sam-template's output, in either sharing mode: SAM builds FROM
    public.ecr.aws/lambda/python:3.13-x86_64, which the stand-ins tag too."""
    template, logical_id = for_sam
    event = ROOT / "lambdas" / "order_total" / "events" / "order.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run([*engine_side(), str(sam_cli), "local", "invoke", "-t", str(template), "--event",
                             str(event), "--skip-pull-image", logical_id], capture_output=True, text=True,
                            timeout=600, env=env)
    assert '"total": "102.30"' in result.stdout, result.stderr[-3000:]


CLIENT = """
import json, sys, boto3
client = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
answer = client.invoke(FunctionName=sys.argv[2], Payload=open(sys.argv[3], "rb").read())
print(answer["Payload"].read().decode())
"""


def test_the_real_sam_cli_start_lambda_answers_a_boto3_invoke(sam_cli, for_sam, tmp_path):
    """sam local start-lambda, as tests that call Lambda through boto3 use it, answers the example's event."""
    import socket

    template, logical_id = for_sam
    with socket.socket() as probe:  # a free port (in the namespace, any port is: it has nothing else)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    server = subprocess.Popen([*engine_side(), str(sam_cli), "local", "start-lambda", "-t", str(template),
                               "--skip-pull-image", "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env)
    try:
        event = ROOT / "lambdas" / "order_total" / "events" / "order.json"
        answer = None
        for _ in range(60):  # SAM takes a while to listen
            answer = subprocess.run([*engine_side(), sys.executable, "-c", CLIENT, f"http://127.0.0.1:{port}",
                                     logical_id, str(event)], capture_output=True, text=True, timeout=600)
            if answer.returncode == 0:
                break
            __import__("time").sleep(1)
        assert answer is not None
        assert answer.returncode == 0, answer.stderr[-2000:]
        assert json.loads(answer.stdout)["total"] == "102.30"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


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
