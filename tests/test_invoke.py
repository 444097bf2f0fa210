"""Local invoke from the synthesized assembly, in the bubblewrap sandbox (no Docker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit import SharedPythonLayer
from layerkit.assembly import Assembly
from layerkit.invoke import invoke_function

PROBE = textwrap.dedent('''
    import importlib.util, json, os, sys, time
    import x
    COUNT = 0

    def handler(event, context):
        global COUNT
        COUNT += 1
        action = event.get("action")
        if action == "probe":
            writable = {}
            for folder in ("/var/task", "/opt", "/tmp"):
                try:
                    with open(os.path.join(folder, "probe.txt"), "w") as f:
                        f.write("x")
                    writable[folder] = True
                except OSError:
                    writable[folder] = False
            return {
                "x": x.VALUE, "count": COUNT, "sys_path": sys.path, "writable": writable,
                "pip_visible": importlib.util.find_spec("pip") is not None,
                "vendored": __import__("vendored").WHERE,
                "env": {k: os.environ.get(k) for k in event.get("env", [])},
                "version": "%d.%d" % sys.version_info[:2], "uid": os.getuid(),
            }
        if action == "raise":
            raise ValueError("the order is empty")
        if action == "sleep":
            time.sleep(60)
        return {"x": x.VALUE, "count": COUNT}
''')


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def assembly(tmp_path_factory, kit_cache) -> Assembly:
    src = tmp_path_factory.mktemp("src")
    write(src / "first" / "python" / "x.py", "VALUE = 'first'\n")
    write(src / "second" / "python" / "x.py", "VALUE = 'second'\n")
    # A .pth file in a layer adds a folder to sys.path, as site.addsitedir does on Lambda.
    write(src / "vendor" / "python" / "vendor.pth", "/opt/python/_vendor\n")
    write(src / "vendor" / "python" / "_vendor" / "vendored.py", "WHERE = __file__\n")
    write(src / "too_deep" / "python" / "pkg" / "python" / "mod.py", "VALUE = 1\n")
    write(src / "probe" / "handler.py", PROBE)
    write(src / "deep" / "handler.py", "import mod\n\ndef handler(event, context):\n    return mod.VALUE\n")

    app = App(outdir=str(tmp_path_factory.mktemp("cdk.out")), context={"layerkit:builder": "local"})
    owner = Stack(app, "owner")
    py312 = lambda_.Runtime.PYTHON_3_12
    layers = {name: SharedPythonLayer(owner, name, entry=src / name, runtime=py312)
              for name in ("first", "second", "vendor")}
    # Zipped by hand: the kit's own build refuses a module one level too deep.
    layers["too_deep"] = lambda_.LayerVersion(owner, "too_deep", code=lambda_.Code.from_asset(str(src / "too_deep")))
    user = Stack(app, "user")

    def function(stack_id: str, code: str, names: list[str]) -> None:
        stack = user if stack_id == "user" else Stack(app, stack_id)
        lambda_.Function(stack, code.capitalize() + "".join(n.capitalize() for n in names), runtime=py312,
                         handler="handler.handler", code=lambda_.Code.from_asset(str(src / code)),
                         layers=[layers[n].for_stack(stack) if isinstance(layers[n], SharedPythonLayer)
                                 else layers[n] for n in names], timeout=Duration.seconds(3),
                         environment={"GREETING": "hello", "STACK_ID": stack.stack_id})

    function("user", "probe", ["first", "second", "vendor"])
    function("reversed", "probe", ["second", "first", "vendor"])
    function("deep", "deep", ["too_deep"])
    return Assembly.load(app.synth().directory)


def fn_id(assembly: Assembly, stack: str) -> str:
    (fn,) = [f for f in assembly.functions() if f.stack == stack]
    return fn.id


def invoke(assembly, stack, *events, **options):
    return invoke_function(assembly.function(fn_id(assembly, stack)),
                           [json.dumps(e).encode() for e in events], **options)


def layerkit_invoke(assembly: Assembly, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerkit.cli", "invoke", "--assembly", str(assembly.directory),
                           *args], capture_output=True, text=True, input=stdin, timeout=120)


def test_example_functions_return_their_results_with_layers_from_the_other_stack(example):
    assembly = Assembly.load(example.app.outdir)
    order = assembly.function("lambda-layers-example-order-total/Function")
    assert [(u.layer.name, u.layer.stack, u.via) for u in order.layers] == [
        ("my_layer", "lambda-layers-example", "ssm"), ("another_layer", "lambda-layers-example", "ssm"),
    ]
    root = Path(__file__).resolve().parents[1]
    events = [(root / "lambdas/order_total/events/order.json").read_bytes()]
    (result,) = invoke_function(order, events)
    assert result.payload == {"ok": True, "order_id": "A-1001", "currency": "EUR", "lines": 2, "total": "102.30",
                              "placed_on": "Friday 27 November 2026"}

    stats = assembly.function("lambda-layers-example-text-stats/Function")
    (result,) = invoke_function(stats, [(root / "lambdas/text_stats/events/text.json").read_bytes()])
    assert result.payload == {"ok": True, "words": 14, "unique": 9,
                              "top": [{"word": "layer", "count": 3}, {"word": "the", "count": 3}]}


def test_the_later_layer_wins_for_the_same_path(assembly):
    assert invoke(assembly, "user", {})[0].payload["x"] == "second"
    assert invoke(assembly, "reversed", {})[0].payload["x"] == "first"


def test_the_sandbox_is_shaped_like_lambda(assembly):
    env_names = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
                 "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER", "TZ", "GREETING",
                 "_X_AMZN_TRACE_ID", "HOME"]
    (result,) = invoke(assembly, "user", {"action": "probe", "env": env_names})
    probe = result.payload
    assert probe["writable"] == {"/var/task": False, "/opt": False, "/tmp": True}
    assert probe["pip_visible"] is False, "the host's site-packages leaked into the sandbox"
    assert probe["sys_path"][:3] == ["/var/task", "/opt/python/lib/python3.12/site-packages", "/opt/python"]
    assert probe["sys_path"][-1] == "/var/runtime"
    assert "/opt/python/_vendor" in probe["sys_path"]
    assert probe["vendored"] == "/opt/python/_vendor/vendored.py"
    assert probe["version"] == "3.12"
    assert probe["uid"] == 993
    env = probe["env"]
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
    assert (env["LAMBDA_TASK_ROOT"], env["LAMBDA_RUNTIME_DIR"]) == ("/var/task", "/var/runtime")
    assert (env["_HANDLER"], env["TZ"], env["GREETING"]) == ("handler.handler", ":UTC", "hello")
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert env["HOME"] is None, "the host's environment leaked into the sandbox"


def test_a_new_trace_id_per_invoke_and_a_warm_environment_is_reused(assembly):
    event = {"action": "probe", "env": ["_X_AMZN_TRACE_ID"]}
    results = invoke(assembly, "user", event, repeat=3)
    assert [r.payload["count"] for r in results] == [1, 2, 3]
    assert len({r.payload["env"]["_X_AMZN_TRACE_ID"] for r in results}) == 3
    assert results[0].init_ms is not None
    assert [r.init_ms for r in results[1:]] == [None, None]


def test_a_module_one_level_too_deep_is_an_import_module_error(assembly):
    result = layerkit_invoke(assembly, fn_id(assembly, "deep"))
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert error["errorMessage"] == "Unable to import module 'handler': No module named 'mod'"


def test_a_handler_exception_gives_lambdas_error_json_and_exit_1(assembly):
    result = layerkit_invoke(assembly, fn_id(assembly, "user"), "--event", "-", stdin='{"action": "raise"}')
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "the order is empty")
    assert any("raise ValueError" in line for line in error["stackTrace"])
    assert "REPORT RequestId:" in result.stderr


def test_a_timeout_kills_the_function_and_reports_sandbox_timedout(assembly):
    started = time.perf_counter()
    result = layerkit_invoke(assembly, fn_id(assembly, "user"), "--timeout", "1", "--event", "-",
                             stdin='{"action": "sleep"}')
    elapsed = time.perf_counter() - started
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"] == "Task timed out after 1.00 seconds"
    assert elapsed < 10


def test_after_a_timeout_the_next_invoke_starts_a_fresh_environment(assembly):
    results = invoke(assembly, "user", {"action": "sleep"}, {}, timeout_s=1)
    assert results[0].payload["errorType"] == "Sandbox.Timedout"
    assert results[1].payload == {"x": "second", "count": 1}
    assert results[1].init_ms is not None


def test_a_malformed_event_file_stops_before_anything_runs(assembly, tmp_path):
    bad = write(tmp_path / "event.json", '{"action": "probe",}')
    result = layerkit_invoke(assembly, fn_id(assembly, "user"), "--event", str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (f"layerkit: error: event file {bad} is not valid JSON: Expecting property name "
                             "enclosed in double quotes at line 1 column 20; fix the file (an event is one JSON "
                             'document, e.g. {"key": "value"})\n')


def test_a_variable_known_only_at_deploy_time_is_named_and_can_be_set(assembly):
    event = '{"action": "probe", "env": ["STACK_ID", "GREETING"]}'
    unset = layerkit_invoke(assembly, fn_id(assembly, "user"), "--event", "-", stdin=event)
    assert unset.returncode == 0, unset.stderr
    assert json.loads(unset.stdout)["env"] == {"STACK_ID": None, "GREETING": "hello"}
    assert "layerkit: warning: no local value for STACK_ID: CloudFormation sets it at deploy time" in unset.stderr
    assert "pass --env STACK_ID=... to set it locally" in unset.stderr
    given = layerkit_invoke(assembly, fn_id(assembly, "user"), "--event", "-", "--env", "STACK_ID=local",
                            stdin=event)
    assert json.loads(given.stdout)["env"] == {"STACK_ID": "local", "GREETING": "hello"}
    assert "warning" not in given.stderr


def test_an_unknown_function_names_the_known_ones(assembly):
    result = layerkit_invoke(assembly, "nope/Function")
    assert result.returncode == 1
    assert "no function 'nope/Function'" in result.stderr
    assert fn_id(assembly, "user") in result.stderr


def test_list_shows_every_function_with_its_layers_in_order(assembly):
    result = layerkit_invoke(assembly, "--list")
    assert result.returncode == 0
    lines = {line.split("\t")[0]: line.split("\t")[-1] for line in result.stdout.splitlines()}
    assert lines[fn_id(assembly, "reversed")] == "second, first, vendor"


DOCKER_STAND_IN = """\
#!{python}
import json, os, sys
with open(os.environ["DOCKER_CALLS"], "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:2] == ["run"]:
    sys.stderr.write("docker: Cannot connect to the Docker daemon (stand-in)\\n")
    sys.exit(125)
"""


def test_the_docker_backend_runs_the_lambda_base_image_with_code_and_layers_mounted(assembly, tmp_path):
    bin_dir = tmp_path / "bin"
    write(bin_dir / "docker", DOCKER_STAND_IN.format(python=sys.executable)).chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DOCKER_CALLS": str(calls)}
    result = subprocess.run(
        [sys.executable, "-m", "layerkit.cli", "invoke", "--assembly", str(assembly.directory),
         fn_id(assembly, "user"), "--env", "STAGE=local"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith("docker: Cannot connect to the Docker daemon (stand-in)")
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    assert recorded[0] == ["info"]  # auto: a daemon answered, so the container backend was chosen
    run = recorded[1]
    assert run[:2] == ["run", "--rm"]
    assert run[-2:] == ["public.ecr.aws/lambda/python:3.12", "handler.handler"]
    assert run[run.index("--platform") + 1] == "linux/amd64"
    volumes = [run[i + 1] for i, flag in enumerate(run) if flag == "--volume"]
    mounts = {v.split(":")[1]: (Path(v.split(":")[0]), v.split(":")[2]) for v in volumes}
    assert mounts.keys() == {"/var/task", "/opt"}
    assert all(mode == "ro" for _, mode in mounts.values())
    assert (mounts["/var/task"][0] / "handler.py").exists()
    assert (mounts["/opt"][0] / "python" / "x.py").read_text() == "VALUE = 'second'\n"
    env_args = dict(run[i + 1].split("=", 1) for i, flag in enumerate(run) if flag == "--env")
    assert env_args["GREETING"] == "hello"
    assert env_args["STAGE"] == "local"
    assert env_args["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env_args["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "3"
    assert env_args["AWS_LAMBDA_FUNCTION_NAME"].startswith("user-")
    assert run[run.index("--memory") + 1] == "128m"
