"""Local invoke from the synthesized assembly, with both backends on the kit's one Runtime API: the bubblewrap
sandbox (python3.12, this machine's interpreter) and a container of the Lambda base image (python3.13, on a real
Docker engine)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assembly import Assembly
from layerkit.invoke import invoke_function
from tests.conftest import app_context

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
                "remaining_ms": context.get_remaining_time_in_millis(), "request_id": context.aws_request_id,
            }
        if action == "raise":
            raise ValueError("the order is empty")
        if action == "sleep":
            time.sleep(60)
        if action == "hog":
            hog = bytearray(event["mb"] * 1024 * 1024)
            return len(hog)
        return {"x": x.VALUE, "count": COUNT}
''')
RUNTIMES = {"sandbox": lambda_.Runtime.PYTHON_3_12, "docker": lambda_.Runtime.PYTHON_3_13}
REPORT = re.compile(r"^REPORT RequestId: (?P<id>[0-9a-f-]{36})\tDuration: (?P<duration>[\d.]+) ms\t"
                    r"Billed Duration: (?P<billed>\d+) ms\tMemory Size: (?P<size>\d+) MB\t"
                    r"Max Memory Used: (?P<used>\d+) MB(?:\tInit Duration: (?P<init>[\d.]+) ms)?$")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@dataclass
class Invokable:
    assembly: Assembly
    backend: str
    version: str


@pytest.fixture(scope="module", params=["sandbox", "docker"])
def app(request, tmp_path_factory, kit_cache) -> Invokable:
    backend = request.param
    if backend == "docker":
        request.getfixturevalue("lambda_images")
    runtime = RUNTIMES[backend]
    src = tmp_path_factory.mktemp("src")
    write(src / "first" / "python" / "x.py", "VALUE = 'first'\n")
    write(src / "second" / "python" / "x.py", "VALUE = 'second'\n")
    # A .pth file in a layer adds a folder to sys.path, as site.addsitedir does on Lambda.
    write(src / "vendor" / "python" / "vendor.pth", "/opt/python/_vendor\n")
    write(src / "vendor" / "python" / "_vendor" / "vendored.py", "WHERE = __file__\n")
    write(src / "too_deep" / "python" / "pkg" / "python" / "mod.py", "VALUE = 1\n")
    write(src / "probe" / "handler.py", PROBE)
    write(src / "deep" / "handler.py", "import mod\n\ndef handler(event, context):\n    return mod.VALUE\n")

    cdk_app = App(outdir=str(tmp_path_factory.mktemp("cdk.out")), context=app_context())
    owner = Stack(cdk_app, "owner")
    layers: dict[str, object] = {name: SharedPythonLayer(owner, name, entry=src / name, runtime=runtime)
                                 for name in ("first", "second", "vendor")}
    # Zipped by hand: the kit's own build refuses a module one level too deep.
    layers["too_deep"] = lambda_.LayerVersion(owner, "too_deep", code=lambda_.Code.from_asset(str(src / "too_deep")))
    user = Stack(cdk_app, "user")

    def function(stack_id: str, code: str, names: list[str]) -> None:
        stack = user if stack_id == "user" else Stack(cdk_app, stack_id)
        PythonFunction(stack, code.capitalize() + "".join(n.capitalize() for n in names), runtime=runtime,
                       entry=src / code, index="handler.py", layers=[layers[n] for n in names],
                       timeout=Duration.seconds(3), environment={"GREETING": "hello", "STACK_ID": stack.stack_id})

    function("user", "probe", ["first", "second", "vendor"])
    function("reversed", "probe", ["second", "first", "vendor"])
    function("deep", "deep", ["too_deep"])
    return Invokable(Assembly.load(cdk_app.synth().directory), backend, runtime.name.removeprefix("python"))


def fn_id(app: Invokable, stack: str) -> str:
    (fn,) = [f for f in app.assembly.functions() if f.stack == stack]
    return fn.id


def invoke(app: Invokable, stack, *events, **options):
    return invoke_function(app.assembly.function(fn_id(app, stack)), [json.dumps(e).encode() for e in events],
                           backend=app.backend, **options)


def layerkit_invoke(app: Invokable, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerkit.cli", "invoke", "--assembly", str(app.assembly.directory),
                           "--backend", app.backend, *args], capture_output=True, text=True, input=stdin, timeout=300)


def test_the_later_layer_wins_for_the_same_path(app):
    assert invoke(app, "user", {})[0].payload["x"] == "second"
    assert invoke(app, "reversed", {})[0].payload["x"] == "first"


def test_the_environment_is_shaped_like_lambda(app):
    env_names = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
                 "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER", "TZ", "GREETING",
                 "_X_AMZN_TRACE_ID", "HOME"]
    (result,) = invoke(app, "user", {"action": "probe", "env": env_names})
    probe = result.payload
    assert probe["writable"] == {"/var/task": False, "/opt": False, "/tmp": True}
    if app.backend == "sandbox":
        assert probe["pip_visible"] is False, "the host's site-packages leaked into the sandbox"
    assert probe["sys_path"][:3] == ["/var/task", f"/opt/python/lib/python{app.version}/site-packages",
                                     "/opt/python"]
    assert probe["sys_path"][-1] == "/var/runtime"
    assert "/opt/python/_vendor" in probe["sys_path"]
    assert probe["vendored"] == "/opt/python/_vendor/vendored.py"
    assert (probe["version"], probe["uid"]) == (app.version, 993)
    assert probe["request_id"] == result.request_id
    assert 0 < probe["remaining_ms"] <= 3000
    env = probe["env"]
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_python{app.version}"
    assert (env["LAMBDA_TASK_ROOT"], env["LAMBDA_RUNTIME_DIR"]) == ("/var/task", "/var/runtime")
    assert (env["_HANDLER"], env["TZ"], env["GREETING"]) == ("handler.handler", ":UTC", "hello")
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert env["HOME"] in (None, "/"), "the host's environment leaked into the function"


def test_a_new_trace_id_per_invoke_and_a_warm_environment_is_reused(app):
    event = {"action": "probe", "env": ["_X_AMZN_TRACE_ID"]}
    results = invoke(app, "user", event, repeat=3)
    assert [r.payload["count"] for r in results] == [1, 2, 3]
    assert len({r.payload["env"]["_X_AMZN_TRACE_ID"] for r in results}) == 3
    assert len({r.request_id for r in results}) == 3
    assert results[0].init_ms is not None
    assert [r.init_ms for r in results[1:]] == [None, None]


def test_the_report_line_has_lambdas_fields(app):
    result = layerkit_invoke(app, fn_id(app, "user"), "--repeat", "2")
    assert result.returncode == 0, result.stderr
    reports = [REPORT.match(line) for line in result.stderr.splitlines() if line.startswith("REPORT")]
    assert len(reports) == 2
    assert all(reports), result.stderr
    first, second = reports
    assert first["id"] != second["id"]
    assert [f"END RequestId: {r['id']}" in result.stderr for r in reports] == [True, True]
    assert first["size"] == "128"
    assert first["init"] is not None
    assert second["init"] is None  # warm
    assert 1 < int(first["used"]) <= 128
    assert int(first["billed"]) >= float(first["duration"])


def test_a_module_one_level_too_deep_is_an_import_module_error(app):
    result = layerkit_invoke(app, fn_id(app, "deep"))
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert error["errorMessage"] == "Unable to import module 'handler': No module named 'mod'"


def test_a_handler_exception_gives_lambdas_error_json_and_exit_1(app):
    result = layerkit_invoke(app, fn_id(app, "user"), "--event", "-", stdin='{"action": "raise"}')
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "the order is empty")
    assert any("raise ValueError" in line for line in error["stackTrace"])
    assert REPORT.match(next(line for line in result.stderr.splitlines() if line.startswith("REPORT")))


def test_a_timeout_kills_the_function_and_reports_sandbox_timedout(app):
    started = time.perf_counter()
    result = layerkit_invoke(app, fn_id(app, "user"), "--timeout", "1", "--event", "-",
                             stdin='{"action": "sleep"}')
    elapsed = time.perf_counter() - started
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"] == "Task timed out after 1.00 seconds"
    assert elapsed < 50, "the function was not stopped at its timeout (it sleeps 60 s)"


def test_after_a_timeout_the_next_invoke_starts_a_fresh_environment(app):
    results = invoke(app, "user", {"action": "sleep"}, {}, timeout_s=1)
    assert results[0].payload["errorType"] == "Sandbox.Timedout"
    assert results[1].payload == {"x": "second", "count": 1}  # the handler ran once per event: no retry
    assert results[1].init_ms is not None


def test_a_function_over_its_memory_size_is_killed_with_lambdas_error(app):
    import os

    if app.backend == "sandbox" and os.geteuid() != 0:
        pytest.skip("the sandbox's memory cgroup needs root or a delegated cgroup here (CI runs as root)")
    results = invoke(app, "user", {"action": "hog", "mb": 512}, {"action": "hog", "mb": 16})
    assert results[0].payload["errorType"] == "Runtime.OutOfMemory"
    assert results[0].payload["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    assert results[0].max_memory_mb == 128
    assert (results[1].ok, results[1].payload, results[1].init_ms is not None) == (True, 16 * 1024 * 1024, True)


def test_a_malformed_event_file_stops_before_anything_runs(app, tmp_path):
    bad = write(tmp_path / "event.json", '{"action": "probe",}')
    result = layerkit_invoke(app, fn_id(app, "user"), "--event", str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (f"layerkit: error: event file {bad} is not valid JSON: Expecting property name "
                             "enclosed in double quotes at line 1 column 20; fix the file (an event is one JSON "
                             'document, e.g. {"key": "value"})\n')


def test_a_variable_known_only_at_deploy_time_is_named_and_can_be_set(app):
    event = '{"action": "probe", "env": ["STACK_ID", "GREETING"]}'
    unset = layerkit_invoke(app, fn_id(app, "user"), "--event", "-", stdin=event)
    assert unset.returncode == 0, unset.stderr
    assert json.loads(unset.stdout)["env"] == {"STACK_ID": None, "GREETING": "hello"}
    assert "layerkit: warning: no local value for STACK_ID: CloudFormation sets it at deploy time" in unset.stderr
    assert "pass --env STACK_ID=... to set it locally" in unset.stderr
    given = layerkit_invoke(app, fn_id(app, "user"), "--event", "-", "--env", "STACK_ID=local", stdin=event)
    assert json.loads(given.stdout)["env"] == {"STACK_ID": "local", "GREETING": "hello"}
    assert "warning" not in given.stderr


def test_an_unknown_function_names_the_known_ones(app):
    result = layerkit_invoke(app, "nope/Function")
    assert result.returncode == 1
    assert "no function 'nope/Function'" in result.stderr
    assert fn_id(app, "user") in result.stderr


def test_list_shows_every_function_with_its_layers_in_order(app):
    result = layerkit_invoke(app, "--list")
    assert result.returncode == 0
    lines = {line.split("\t")[0]: line.split("\t")[-1] for line in result.stdout.splitlines()}
    assert lines[fn_id(app, "reversed")] == "second, first, vendor"


# -- the example app's own functions ---------------------------------------------------------------------
@pytest.fixture(scope="module", params=["sandbox", "docker"])
def example_functions(request, kit_cache, tmp_path_factory):
    """The example app, as `make run` synthesizes it (python3.12) for the sandbox, rebuilt for python3.13 (its
    layers and its functions' own dependencies) for the container."""
    if request.param == "sandbox":
        example = request.getfixturevalue("example")
        return Assembly.load(example.app.outdir), "sandbox"
    request.getfixturevalue("lambda_images")
    import app as example_app

    cdk_app = App(outdir=str(tmp_path_factory.mktemp("cdk.out-313")), context=app_context())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(example_app, "RUNTIME", lambda_.Runtime.PYTHON_3_13)
        example_app.build(cdk_app)
    return Assembly.load(cdk_app.synth().directory), "docker"


def test_example_functions_return_their_results_with_layers_from_the_other_stack(example_functions):
    assembly, backend = example_functions
    order = assembly.function("lambda-layers-example-order-total/Function")
    assert [(u.layer.name, u.layer.stack, u.via) for u in order.layers] == [
        ("my_layer", "lambda-layers-example", "ssm"), ("another_layer", "lambda-layers-example", "ssm"),
    ]
    root = Path(__file__).resolve().parents[1]
    events = [(root / "lambdas/order_total/events/order.json").read_bytes()]
    (result,) = invoke_function(order, events, backend=backend)
    assert result.payload == {"ok": True, "order_id": "A-1001", "currency": "EUR", "lines": 2, "total": "102.30",
                              "placed_on": "Friday 27 November 2026"}

    stats = assembly.function("lambda-layers-example-text-stats/Function")
    (result,) = invoke_function(stats, [(root / "lambdas/text_stats/events/text.json").read_bytes()], backend=backend)
    assert result.payload == {"ok": True, "words": 14, "unique": 9,
                              "top": [{"word": "layer", "count": 3}, {"word": "the", "count": 3}]}


@pytest.mark.parametrize("system", ["darwin", "win32"])
def test_without_docker_on_macos_or_windows_invoke_says_what_to_install(monkeypatch, system, tmp_path):
    from layerkit.core.errors import InvokeError
    from layerkit.invoke import session

    monkeypatch.setattr(session, "docker_available", lambda: False)
    monkeypatch.setattr(sys, "platform", system)
    function = Assembly.from_templates("test", {"S": {"Resources": {}}})  # no function needed to choose
    with pytest.raises(InvokeError, match=r"^no Docker daemon answers, and the sandbox backend needs Linux "
                                          r"\(bubblewrap\); install and start Docker Desktop"):
        session.choose_backend("auto", function)  # type: ignore[arg-type]
    with pytest.raises(InvokeError, match=r"^no Docker daemon answers; start Docker"):
        session.choose_backend("docker", function)  # type: ignore[arg-type]
