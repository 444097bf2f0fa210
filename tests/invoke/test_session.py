"""An invoke as Lambda runs it (layerkit.invoke.session): the environment, path order, log lines, REPORT, init phase,
timeouts and errors, on each backend."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit.assembly import Assembly
from layerkit.invoke import invoke_function
from tests.conftest import app_context, write
from tests.helpers import cli, one_line, write_file
from tests.invoke.apps import REPORT, RUNTIMES, cli_layers, cli_probe, fn_id, invoke_layers, invoke_probe


def test_the_environment_is_shaped_like_lambda(layers_app):
    env_names = ["AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
                 "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER", "TZ", "GREETING",
                 "_X_AMZN_TRACE_ID", "HOME"]
    (result,) = invoke_layers(layers_app, "user", {"action": "probe", "env": env_names})
    probe = result.payload
    assert probe["writable"] == {"/var/task": False, "/opt": False, "/tmp": True}
    if layers_app.backend == "sandbox":
        assert probe["pip_visible"] is False, "the host's site-packages leaked into the sandbox"
    assert probe["sys_path"][:3] == ["/var/task", f"/opt/python/lib/python{layers_app.version}/site-packages",
                                     "/opt/python"]
    assert probe["sys_path"][-1] == "/var/runtime"
    assert "/opt/python/_vendor" in probe["sys_path"]
    assert probe["vendored"] == "/opt/python/_vendor/vendored.py"
    assert (probe["version"], probe["uid"]) == (layers_app.version, 993)
    assert probe["request_id"] == result.request_id
    assert 0 < probe["remaining_ms"] <= 3000
    env = probe["env"]
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_EXECUTION_ENV"] == f"AWS_Lambda_python{layers_app.version}"
    assert (env["LAMBDA_TASK_ROOT"], env["LAMBDA_RUNTIME_DIR"]) == ("/var/task", "/var/runtime")
    assert (env["_HANDLER"], env["TZ"], env["GREETING"]) == ("handler.handler", ":UTC", "hello")
    assert env["_X_AMZN_TRACE_ID"].startswith("Root=1-")
    assert env["HOME"] in (None, "/"), "the host's environment leaked into the function"


def test_a_new_trace_id_per_invoke_and_a_warm_environment_is_reused(layers_app):
    event = {"action": "probe", "env": ["_X_AMZN_TRACE_ID"]}
    results = invoke_layers(layers_app, "user", event, repeat=3)
    assert [r.payload["count"] for r in results] == [1, 2, 3]
    assert len({r.payload["env"]["_X_AMZN_TRACE_ID"] for r in results}) == 3
    assert len({r.request_id for r in results}) == 3
    assert results[0].init_ms is not None
    assert [r.init_ms for r in results[1:]] == [None, None]


def test_the_report_line_has_lambdas_fields(layers_app):
    result = cli_layers(layers_app, fn_id(layers_app, "user"), "--repeat", "2")
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


def test_a_module_one_level_too_deep_is_an_import_module_error(layers_app):
    result = cli_layers(layers_app, fn_id(layers_app, "deep"))
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert error["errorMessage"] == "Unable to import module 'handler': No module named 'mod'"


def test_a_handler_exception_gives_lambdas_error_json_and_exit_1(layers_app):
    result = cli_layers(layers_app, fn_id(layers_app, "user"), "--event", "-", stdin='{"action": "raise"}')
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "the order is empty")
    assert any("raise ValueError" in line for line in error["stackTrace"])
    assert REPORT.match(next(line for line in result.stderr.splitlines() if line.startswith("REPORT")))


def test_a_timeout_kills_the_function_and_reports_sandbox_timedout(layers_app):
    started = time.perf_counter()
    result = cli_layers(layers_app, fn_id(layers_app, "user"), "--timeout", "1", "--event", "-",
                             stdin='{"action": "sleep"}')
    elapsed = time.perf_counter() - started
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"] == "Task timed out after 1.00 seconds"
    assert elapsed < 50, "the function was not stopped at its timeout (it sleeps 60 s)"


def test_after_a_timeout_the_next_invoke_starts_a_fresh_environment(layers_app):
    results = invoke_layers(layers_app, "user", {"action": "sleep"}, {}, timeout_s=1)
    assert results[0].payload["errorType"] == "Sandbox.Timedout"
    assert results[1].payload == {"x": "second", "count": 1}  # the handler ran once per event: no retry
    assert results[1].init_ms is not None


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


# -- what the runtime provides ------------------------------------------------------------------------------------
def test_the_runtime_provides_boto3_and_botocore_at_the_versions_aws_lists(probe_app):
    from layerkit.core.targets import RUNTIME_SDK

    (result,) = invoke_probe(probe_app, "Probe", {"action": "sdk"})
    runtime = RUNTIMES[probe_app.backend].name
    assert result.payload == {**RUNTIME_SDK[runtime], "from": "/var/runtime"}, result.payload


def test_a_layers_own_boto3_comes_before_the_runtimes(tmp_path, kit_cache):
    write_file(tmp_path / "sdk" / "python" / "boto3" / "__init__.py", "__version__ = 'the layer s own'\n")
    write_file(tmp_path / "fn" / "index.py", "import boto3\n\ndef handler(e, c):\n    return boto3.__version__\n")
    cdk_app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())
    stack = Stack(cdk_app, "S")
    layer = lambda_.LayerVersion(stack, "Sdk", code=lambda_.Code.from_asset(str(tmp_path / "sdk")))
    lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                     code=lambda_.Code.from_asset(str(tmp_path / "fn")), layers=[layer])
    cdk_app.synth()
    (result,) = invoke_function(Assembly.load(tmp_path / "cdk.out").function("S/Fn"), [b"{}"], backend="sandbox")
    assert result.payload == "the layer s own"


def test_describe_says_what_the_runtime_provides(probe_sandbox_app):
    result = subprocess.run([sys.executable, "-m", "layerkit.cli", "describe", "--assembly",
                             str(probe_sandbox_app.outdir)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if "function S/Probe:" in line]
    assert line.endswith("; the runtime provides boto3 1.40.4, botocore 1.40.4")


# -- 4. the init phase -----------------------------------------------------------------------------------
def test_an_init_over_10_s_is_retried_within_the_first_invoke_under_the_functions_timeout(probe_app):
    started = time.perf_counter()
    result = cli_probe(probe_app, "S/SlowInit")
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"version": "one"}
    lines = result.stderr.splitlines()
    reports = [line for line in lines if line.startswith("INIT_REPORT")]
    assert len(reports) == 2, lines
    assert reports[0].startswith("INIT_REPORT Init Duration: 10")
    assert reports[0].endswith("\tPhase: init\tStatus: timeout")
    assert reports[1].endswith("\tPhase: invoke\tStatus: success")
    start = next(i for i, line in enumerate(lines) if line.startswith("START RequestId: "))
    assert lines.index(reports[1]) < start < next(i for i, line in enumerate(lines) if line.startswith("END "))
    report = next(line for line in lines if line.startswith("REPORT "))
    assert float(report.split("Duration: ")[1].split(" ms")[0]) >= 12000  # the retried init is the invoke's
    assert "Init Duration" not in report
    assert 22 <= elapsed < 60


def test_an_init_that_never_finishes_is_timed_out_at_the_functions_timeout(probe_sandbox_app):
    result = cli_probe(probe_sandbox_app, "S/StuckInit")
    assert result.returncode == 1
    assert json.loads(result.stdout)["errorType"] == "Sandbox.Timedout"
    assert json.loads(result.stdout)["errorMessage"] == "Task timed out after 3.00 seconds"
    reports = [line for line in result.stderr.splitlines() if line.startswith("INIT_REPORT")]
    assert [r.split("\t", 1)[1] for r in reports] == ["Phase: init\tStatus: timeout",
                                                      "Phase: invoke\tStatus: timeout"]
    assert next(line for line in result.stderr.splitlines() if line.startswith("REPORT")).endswith(
        "\tStatus: timeout")


# -- 5. Lambda's log lines -------------------------------------------------------------------------------
def test_log_lines_come_in_lambdas_order_and_nothing_after_report(probe_app):
    for _ in range(6):  # the runtime client's traceback at shutdown came about one run in six
        result = cli_probe(probe_app, "S/Probe", "--event", "-", "--repeat", "2", stdin='{"action": "print", "n": 7}')
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stderr.splitlines() if not line.startswith("layerkit: ")]
        kinds = [line.split(" ", 1)[0] if line.split(" ", 1)[0] in ("START", "END", "REPORT") else line
                 for line in lines]
        assert kinds == ["START", "the handler says 7", "END", "REPORT"] * 2, lines
        assert lines[0].endswith(" Version: $LATEST")
        assert "Traceback" not in result.stderr


def test_every_line_a_handler_printed_comes_whole_before_its_end_line(probe_app):
    result = cli_probe(probe_app, "S/Probe", "--event", "-", stdin='{"action": "print", "n": 7, "times": 5000}')
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if not line.startswith("layerkit: ")]
    kinds = [line.split(" ", 1)[0] if line.startswith(("START ", "END ", "REPORT ")) else line for line in lines]
    assert kinds == ["START", *["the handler says 7"] * 5000, "END", "REPORT"]


def test_each_invoke_keeps_its_own_output_and_report(probe_app):
    results = invoke_probe(probe_app, "Probe", {"action": "print", "n": 1}, {"action": "print", "n": 2})
    assert [r.logs for r in results] == [["the handler says 1"], ["the handler says 2"]]
    assert [r.report["request_id"] for r in results] == [r.request_id for r in results]
    assert results[0].report["init_duration_ms"] is not None
    assert results[1].report["init_duration_ms"] is None


def test_invoke_refuses_a_function_lambda_would_refuse_for_its_size(tmp_path, kit_cache):
    layer_zip = tmp_path / "big.zip"
    with zipfile.ZipFile(layer_zip, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("python/data.bin", bytes(260 * 1024 * 1024))
    code = write(tmp_path / "code", {"index.py": "def handler(e, c):\n    return 1\n"})
    cdk_app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())  # no layerkit.check: the synth passes
    stack = Stack(cdk_app, "S")
    lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                     code=lambda_.Code.from_asset(str(code)),
                     layers=[lambda_.LayerVersion(stack, "Big", code=lambda_.Code.from_asset(str(layer_zip)))])
    cdk_app.synth()
    message = one_line(cli("invoke", "--assembly", str(tmp_path / "cdk.out"), "S/Fn", "--backend", "sandbox"))
    assert message.startswith("layerkit: error: function S/Fn: code plus layers is 260 MB unzipped; Lambda allows "
                              "250 MB for a function's code and all its layers.")
    assert message.endswith("Lambda would refuse to create it, so it is not invoked.")
