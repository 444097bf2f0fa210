"""The container backend (layerkit.invoke.container) holds the function as the sandbox does: its own network
(the internet, nothing of this machine), Lambda's read-only file system and limits, and the same answers as the
sandbox on the same events."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit import PythonFunction
from layerkit.assembly import Assembly
from layerkit.invoke import invoke_function
from tests.conftest import app_context
from tests.helpers import cli, write_file
from tests.invoke.apps import PROBE_HANDLER, invoke_probe


def test_a_function_in_a_container_reaches_the_internet_and_nothing_of_this_machine(probe_container_app,
                                                                                    host_server):
    port, abstract = host_server
    (result,) = invoke_probe(probe_container_app, "Probe", {"action": "connect", "abstract": abstract, "targets": {
        "host loopback": ["127.0.0.1", port]}})
    assert result.ok, result.payload
    assert {name: outcome.split(":")[0] for name, outcome in result.payload.items()} == {
        "host loopback": "refused", "abstract": "refused"}
    (fetched,) = invoke_probe(probe_container_app, "Probe", {"action": "fetch", "url": "https://pypi.org/simple/six/"})
    assert fetched.payload == 200


def test_on_an_engine_without_a_bridge_the_function_has_no_network_and_is_told_so(probe_container_app, host_server):
    """A rootless or --bridge=none engine (make docker-engine runs one on the default socket)."""
    without = "unix:///var/run/docker.sock"
    if os.environ.get("DOCKER_HOST", without) == without or subprocess.run(
            ["docker", "info"], env={**os.environ, "DOCKER_HOST": without}, capture_output=True).returncode != 0:
        pytest.skip("needs the engine without a bridge beside the tests' own (make docker-engine starts both)")
    subprocess.run(["bash", "docker/standins/build.sh"], env={**os.environ, "DOCKER_HOST": without}, check=True,
                   capture_output=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    event = json.dumps({"action": "fetch", "url": "https://pypi.org/simple/six/"})
    result = cli("invoke", "--assembly", str(probe_container_app.outdir), "S/Probe", "--backend", "docker",
                 "--event", "-", stdin=event, env={"DOCKER_HOST": without})
    assert result.returncode == 0, result.stderr
    assert "layerkit: the Docker engine has no bridge network, so the function runs without a network" \
        in result.stderr
    assert json.loads(result.stdout).startswith("failed:")


#: The fidelity cases, each one event, asked of both backends: what Lambda's environment looks like from inside.
CASES = {
    "writable": {"action": "write", "folders": ["/var/task", "/opt", "/tmp", "/"]},
    "sdk": {"action": "sdk"},
    "printed": {"action": "print", "n": 3},
    "internet": {"action": "fetch", "url": "https://pypi.org/simple/six/"},
    "out of memory": {"action": "hog", "mb": 512},
    "too large": {"action": "big", "bytes": 7 * 1024 * 1024},
}


@pytest.fixture(scope="module")
def one_function(tmp_path_factory, kit_cache, lambda_images):
    """The probe for python3.13, the runtime both backends have here, in one assembly."""
    src = tmp_path_factory.mktemp("src")
    write_file(src / "fn" / "index.py", PROBE_HANDLER)
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(outdir=str(outdir), context=app_context())
    PythonFunction(Stack(app, "S"), "Probe", entry=src / "fn", runtime=lambda_.Runtime.PYTHON_3_13,
                   memory_size=128, timeout=Duration.seconds(30), bytecode=False)
    app.synth()
    return Assembly.load(outdir).function("S/Probe")


def answers(function, backend: str) -> dict[str, object]:
    results = invoke_function(function, [json.dumps(event).encode() for event in CASES.values()], backend=backend,
                              log=lambda line: None)
    found = {}
    for name, result in zip(CASES, results, strict=True):
        payload = result.payload
        if isinstance(payload, dict) and "from" in payload:
            payload = {**payload, "from": payload["from"].removeprefix("/var/runtime").strip("/") or "runtime"}
        found[name] = (result.ok, payload if result.ok else payload.get("errorType"))
    return found


def test_the_container_answers_as_the_sandbox_does(one_function):
    sandbox, container = answers(one_function, "sandbox"), answers(one_function, "docker")
    assert container == sandbox
    assert sandbox["writable"] == (True, {"/var/task": "Read-only file system", "/opt": "Read-only file system",
                                          "/tmp": "written", "/": "Read-only file system"})
    assert sandbox["out of memory"] == (False, "Runtime.OutOfMemory")
    assert sandbox["too large"] == (False, "Function.ResponseSizeTooLarge")
