"""Local invoke holds the function as Lambda does: its own network, a read-only file system, Lambda's limits, the
init phase, the log lines, the events Lambda accepts, and never stale code. Each case on the sandbox backend, and
on the container backend (a real Docker engine, python3.13 stand-in image) where it applies."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_cdk import App, AssetHashType, Duration, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit import PythonFunction
from layerkit.assembly import Assembly
from layerkit.invoke import invoke_function
from tests.conftest import app_context

HANDLER = textwrap.dedent('''
    import json, os, socket, sys, time, urllib.request

    if os.environ.get("SLOW_INIT_S"):
        print("importing slowly", flush=True)
        time.sleep(float(os.environ["SLOW_INIT_S"]))

    def handler(event, context):
        action = event.get("action")
        if action == "connect":
            found = {}
            for name, (host, port) in event["targets"].items():
                try:
                    socket.create_connection((host, port), timeout=3).close()
                    found[name] = "reached"
                except OSError as error:
                    found[name] = f"refused: {error}"
            if "abstract" in event:
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect("\\0" + event["abstract"])
                    found["abstract"] = "reached"
                except OSError as error:
                    found["abstract"] = f"refused: {error}"
            return found
        if action == "listen":
            server = socket.socket()
            server.bind(("0.0.0.0", event["port"]))
            server.listen(1)
            time.sleep(event.get("hold", 3))
            return "listened"
        if action == "fetch":
            try:
                return urllib.request.urlopen(event["url"], timeout=20).status
            except Exception as error:
                return f"failed: {error}"
        if action == "write":
            result = {}
            for folder in event["folders"]:
                try:
                    with open(os.path.join(folder, "probe.txt"), "w") as f:
                        f.write("x")
                    result[folder] = "written"
                except OSError as error:
                    result[folder] = error.strerror
            return result
        if action == "big":
            return "x" * (event["bytes"] - 2)  # the JSON string's two quotes make up the rest
        if action == "hog":
            hog = bytearray(event["mb"] * 1024 * 1024)
            return len(hog)
        if action == "print":
            print("the handler says", event.get("n", 0), flush=True)
            return {"printed": True}
        if action == "sdk":
            import boto3, botocore
            return {"boto3": boto3.__version__, "botocore": botocore.__version__,
                    "from": os.path.dirname(os.path.dirname(boto3.__file__))}
        return {"version": "one"}
''')
RUNTIMES = {"sandbox": lambda_.Runtime.PYTHON_3_12, "docker": lambda_.Runtime.PYTHON_3_13}


@dataclass
class Invokable:
    assembly: Assembly
    backend: str
    outdir: Path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _synthesized(backend: str, tmp_path_factory) -> Invokable:
    src = tmp_path_factory.mktemp("src")
    write(src / "fn" / "index.py", HANDLER)
    outdir = tmp_path_factory.mktemp("cdk.out")
    cdk_app = App(outdir=str(outdir), context=app_context())
    stack = Stack(cdk_app, "S")
    runtime = RUNTIMES[backend]
    PythonFunction(stack, "Probe", entry=src / "fn", runtime=runtime, timeout=Duration.seconds(30), bytecode=False)
    PythonFunction(stack, "SlowInit", entry=src / "fn", runtime=runtime, timeout=Duration.seconds(30),
                   environment={"SLOW_INIT_S": "12"}, bytecode=False)
    PythonFunction(stack, "StuckInit", entry=src / "fn", runtime=runtime, timeout=Duration.seconds(3),
                   environment={"SLOW_INIT_S": "60"}, bytecode=False)
    cdk_app.synth()
    return Invokable(Assembly.load(outdir), backend, outdir)


@pytest.fixture(scope="module", params=["sandbox", "docker"])
def app(request, tmp_path_factory, kit_cache) -> Invokable:
    """The probe functions, for each backend (python3.12 in the sandbox, python3.13 in the stand-in image)."""
    if request.param == "docker":
        request.getfixturevalue("lambda_images")
        return _synthesized("docker", tmp_path_factory)
    return request.getfixturevalue("sandbox_app")


@pytest.fixture(scope="module")
def sandbox_app(tmp_path_factory, kit_cache) -> Invokable:
    """The probe functions for the sandbox alone: what is about the sandbox's own network and limits."""
    return _synthesized("sandbox", tmp_path_factory)


@pytest.fixture(scope="module")
def container_app(lambda_images, tmp_path_factory, kit_cache) -> Invokable:
    return _synthesized("docker", tmp_path_factory)


def invoke(app: Invokable, name: str, *events: dict, **options):
    return invoke_function(app.assembly.function(f"S/{name}"), [json.dumps(e).encode() for e in events],
                           backend=app.backend, **options)


def cli(app: Invokable, *args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "layerkit.cli", "invoke", "--assembly", str(app.outdir),
                           "--backend", app.backend, *args], capture_output=True, text=True, input=stdin,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture
def host_server():
    """A server on this machine's 127.0.0.1, and one on an abstract unix socket, as a CI runner's services."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract_name = f"layerkit-tests-{os.urandom(6).hex()}"
    abstract.bind("\0" + abstract_name)
    abstract.listen(8)
    stop = threading.Event()

    def serve(sock: socket.socket) -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                sock.accept()[0].close()
            except OSError:
                continue

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in (server, abstract)]
    for thread in threads:
        thread.start()
    yield server.getsockname()[1], abstract_name
    stop.set()
    server.close()
    abstract.close()


# -- 1. the function's own network --------------------------------------------------------------------------
def test_a_function_reaches_nothing_of_this_machine_by_default(sandbox_app, host_server):
    port, abstract = host_server
    (result,) = invoke(sandbox_app, "Probe", {"action": "connect", "abstract": abstract, "targets": {
        "host loopback": ["127.0.0.1", port], "metadata": ["169.254.169.254", 80], "private": ["10.1.2.3", 80],
        "gateway": ["10.0.2.2", port]}})
    assert result.ok, result.payload
    assert {name: outcome.split(":")[0] for name, outcome in result.payload.items()} == {
        "host loopback": "refused", "metadata": "refused", "private": "refused", "gateway": "refused",
        "abstract": "refused"}


def test_a_port_the_function_listens_on_is_not_one_of_this_machine(sandbox_app):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    results: list = []
    thread = threading.Thread(target=lambda: results.extend(
        invoke(sandbox_app, "Probe", {"action": "listen", "port": port, "hold": 4})))
    thread.start()
    time.sleep(2.5)  # the function is listening now
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    thread.join()
    assert results[0].payload == "listened"


def test_the_function_reaches_the_internet_through_slirp4netns(sandbox_app):
    if shutil.which("slirp4netns") is None:
        pytest.fail("slirp4netns is missing: 'make test' installs it (sandbox-tools)")
    (result,) = invoke(sandbox_app, "Probe", {"action": "fetch", "url": "https://pypi.org/simple/six/"})
    assert result.payload == 200


def test_network_host_reaches_a_local_server_and_is_the_documented_way_to(sandbox_app, host_server):
    port, _ = host_server
    event = json.dumps({"action": "connect", "targets": {"emulator": ["127.0.0.1", port]}})
    shared = cli(sandbox_app, "S/Probe", "--network", "host", "--event", "-", stdin=event)
    assert shared.returncode == 0, shared.stderr
    assert json.loads(shared.stdout) == {"emulator": "reached"}
    isolated = cli(sandbox_app, "S/Probe", "--event", "-", stdin=event)
    assert json.loads(isolated.stdout)["emulator"].startswith("refused")


def test_without_a_user_mode_network_tool_the_function_has_no_network_and_is_told_so(sandbox_app, tmp_path):
    bin_dir = tmp_path / "bin"  # this PATH without slirp4netns
    bin_dir.mkdir()
    for tool in ("bwrap", "nsenter", "ip", "sh"):
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    result = cli(sandbox_app, "S/Probe", "--event", "-", stdin='{"action": "fetch", "url": "https://pypi.org/simple/six/"}',
                 env={"PATH": f"{Path(sys.executable).parent}:{bin_dir}"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout).startswith("failed:")
    notes = [line for line in result.stderr.splitlines() if "slirp4netns" in line]
    assert notes == ["layerkit: no slirp4netns on this machine, so the function runs without a network (install "
                     "slirp4netns for its outbound internet, or pass --network host to share this machine's)"]


def test_the_container_says_that_it_shares_this_machines_network(container_app):
    result = cli(container_app, "S/Probe")
    assert result.returncode == 0, result.stderr
    assert "layerkit: the container shares this machine's network (--network host)" in result.stderr


# -- what the runtime provides ------------------------------------------------------------------------------------
def test_the_runtime_provides_boto3_and_botocore_at_the_versions_aws_lists(app):
    from layerkit.core.targets import RUNTIME_SDK

    (result,) = invoke(app, "Probe", {"action": "sdk"})
    runtime = RUNTIMES[app.backend].name
    assert result.payload == {**RUNTIME_SDK[runtime], "from": "/var/runtime"}, result.payload


def test_a_layers_own_boto3_comes_before_the_runtimes(tmp_path, kit_cache):
    write(tmp_path / "sdk" / "python" / "boto3" / "__init__.py", "__version__ = 'the layer s own'\n")
    write(tmp_path / "fn" / "index.py", "import boto3\n\ndef handler(e, c):\n    return boto3.__version__\n")
    cdk_app = App(outdir=str(tmp_path / "cdk.out"), context=app_context())
    stack = Stack(cdk_app, "S")
    layer = lambda_.LayerVersion(stack, "Sdk", code=lambda_.Code.from_asset(str(tmp_path / "sdk")))
    lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                     code=lambda_.Code.from_asset(str(tmp_path / "fn")), layers=[layer])
    cdk_app.synth()
    (result,) = invoke_function(Assembly.load(tmp_path / "cdk.out").function("S/Fn"), [b"{}"], backend="sandbox")
    assert result.payload == "the layer s own"


def test_describe_says_what_the_runtime_provides(sandbox_app):
    result = subprocess.run([sys.executable, "-m", "layerkit.cli", "describe", "--assembly", str(sandbox_app.outdir)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if "function S/Probe:" in line]
    assert line.endswith("; the runtime provides boto3 1.40.4, botocore 1.40.4")


# -- 2. Lambda's file system -----------------------------------------------------------------------------
def test_everything_but_tmp_is_read_only(app):
    folders = ["/", "/etc", "/var", "/var/task", "/opt", "/var/runtime", "/var/lang", "/tmp"]
    (result,) = invoke(app, "Probe", {"action": "write", "folders": folders})
    expected = {folder: "Read-only file system" for folder in folders}
    expected["/tmp"] = "written"
    assert result.payload == expected


# -- 3. Lambda's limits ----------------------------------------------------------------------------------
def test_a_response_over_lambdas_limit_is_response_size_too_large(app):
    largest = cli(app, "S/Probe", "--event", "-", stdin='{"action": "big", "bytes": 6291556}')
    assert largest.returncode == 0, largest.stderr[-500:]
    assert len(largest.stdout.rstrip("\n")) == 6291556
    over = cli(app, "S/Probe", "--event", "-", stdin='{"action": "big", "bytes": 6291557}')
    assert over.returncode == 1
    assert json.loads(over.stdout) == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes)."}


def assert_out_of_memory_then_fresh(results) -> None:
    first, second = results
    assert (first.ok, first.payload["errorType"]) == (False, "Runtime.OutOfMemory"), first.payload
    assert first.max_memory_mb == 128
    assert first.report["status"] == "error"
    assert (second.ok, second.payload, second.init_ms is not None) == (True, 16 * 1024 * 1024, True)


def test_a_function_over_its_memory_size_is_killed_with_out_of_memory(app):
    if app.backend == "sandbox" and os.geteuid() != 0:
        pytest.skip("a memory cgroup needs root or a delegated cgroup here (CI runs as root)")
    assert_out_of_memory_then_fresh(invoke(app, "Probe", {"action": "hog", "mb": 512}, {"action": "hog", "mb": 16}))


def test_without_a_memory_cgroup_a_peak_over_the_memory_size_fails_after_the_fact(sandbox_app, monkeypatch):
    monkeypatch.setenv("LAYERKIT_SANDBOX_CGROUP", "0")  # as on a machine that gives the kit no memory cgroup
    results = invoke(sandbox_app, "Probe", {"action": "hog", "mb": 512}, {"action": "hog", "mb": 16})
    assert_out_of_memory_then_fresh(results)
    assert "its peak" in results[0].payload["errorMessage"]


# -- 4. the init phase -----------------------------------------------------------------------------------
def test_an_init_over_10_s_is_retried_within_the_first_invoke_under_the_functions_timeout(app):
    started = time.perf_counter()
    result = cli(app, "S/SlowInit")
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


def test_an_init_that_never_finishes_is_timed_out_at_the_functions_timeout(sandbox_app):
    result = cli(sandbox_app, "S/StuckInit")
    assert result.returncode == 1
    assert json.loads(result.stdout)["errorType"] == "Sandbox.Timedout"
    assert json.loads(result.stdout)["errorMessage"] == "Task timed out after 3.00 seconds"
    reports = [line for line in result.stderr.splitlines() if line.startswith("INIT_REPORT")]
    assert [r.split("\t", 1)[1] for r in reports] == ["Phase: init\tStatus: timeout",
                                                      "Phase: invoke\tStatus: timeout"]
    assert next(line for line in result.stderr.splitlines() if line.startswith("REPORT")).endswith(
        "\tStatus: timeout")


# -- 5. Lambda's log lines -------------------------------------------------------------------------------
def test_log_lines_come_in_lambdas_order_and_nothing_after_report(app):
    for _ in range(6):  # the runtime client's traceback at shutdown came about one run in six
        result = cli(app, "S/Probe", "--event", "-", "--repeat", "2", stdin='{"action": "print", "n": 7}')
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stderr.splitlines() if not line.startswith("layerkit: ")]
        kinds = [line.split(" ", 1)[0] if line.split(" ", 1)[0] in ("START", "END", "REPORT") else line
                 for line in lines]
        assert kinds == ["START", "the handler says 7", "END", "REPORT"] * 2, lines
        assert lines[0].endswith(" Version: $LATEST")
        assert "Traceback" not in result.stderr


def test_each_invoke_keeps_its_own_output_and_report(app):
    results = invoke(app, "Probe", {"action": "print", "n": 1}, {"action": "print", "n": 2})
    assert [r.logs for r in results] == [["the handler says 1"], ["the handler says 2"]]
    assert [r.report["request_id"] for r in results] == [r.request_id for r in results]
    assert results[0].report["init_duration_ms"] is not None
    assert results[1].report["init_duration_ms"] is None


# -- 6. events Lambda would refuse -----------------------------------------------------------------------
@pytest.mark.parametrize(("content", "message"), [
    (b"[" * 5000 + b"]" * 5000, "is nested deeper than a JSON parser can take"),
    (b'{"value": NaN}', "holds NaN is not JSON: JSON has no such number"),
    ('{"a": 1}'.encode("utf-16"), "starts with a UTF-16 byte order mark"),
    (b'\xef\xbb\xbf{"a": 1}', "starts with a UTF-8 byte order mark"),
    (b'{"a": "\xff"}', "is not UTF-8 text"),
], ids=["deep", "nan", "utf-16", "utf-8-bom", "latin-1"])
def test_an_event_lambda_would_refuse_stops_in_one_line_before_anything_runs(app, tmp_path, content, message):
    event = tmp_path / "event.json"
    event.write_bytes(content)
    result = cli(app, "S/Probe", "--event", str(event))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"layerkit: error: event file {event} ")
    assert message in result.stderr


# -- 7. never stale ----------------------------------------------------------------------------------------
def test_an_edit_that_keeps_a_files_size_is_never_answered_with_the_old_code(sandbox_app, tmp_path, kit_cache):
    layer = write(tmp_path / "layer" / "python" / "which.py", "WHO = 'one'\n").parents[1]
    code = write(tmp_path / "code" / "index.py", "import which\n\ndef handler(e, c):\n    return which.WHO\n").parent

    def synth(outdir: Path) -> Assembly:
        cdk_app = App(outdir=str(outdir), context=app_context())
        stack = Stack(cdk_app, "S")
        # A fixed asset hash, as some apps set one: the asset's folder keeps its name when its content changes.
        fixed = lambda_.LayerVersion(stack, "Fixed", code=lambda_.Code.from_asset(
            str(layer), asset_hash="fixed", asset_hash_type=AssetHashType.CUSTOM))
        lambda_.Function(stack, "Fn", runtime=lambda_.Runtime.PYTHON_3_12, handler="index.handler",
                         code=lambda_.Code.from_asset(str(code)), layers=[fixed])
        cdk_app.synth()
        return Assembly.load(outdir)

    (first,) = invoke_function(synth(tmp_path / "first").function("S/Fn"), [b"{}"], backend="sandbox")
    (layer / "python" / "which.py").write_text("WHO = 'two'\n")  # the same size
    (second,) = invoke_function(synth(tmp_path / "second").function("S/Fn"), [b"{}"], backend="sandbox")
    assert (first.payload, second.payload) == ("one", "two")


def test_a_damaged_runtime_folder_is_made_again(sandbox_app, kit_cache):
    invoke(sandbox_app, "Probe", {})
    runtime = next((kit_cache / "runtime").glob("awslambdaric-*python3.12*")) / "root"
    (runtime / "awslambdaric" / "bootstrap.py").unlink()
    (result,) = invoke(sandbox_app, "Probe", {})
    assert result.payload == {"version": "one"}


APP = textwrap.dedent('''
    import layerkit
    from aws_cdk import App, Stack
    from aws_cdk import aws_lambda as lambda_
    from layerkit import PythonFunction, SharedPythonLayer

    app = App()
    stack = Stack(app, "S")
    layer = SharedPythonLayer(stack, "Words", entry="layer", runtime=lambda_.Runtime.PYTHON_3_12, bytecode=False)
    PythonFunction(stack, "Fn", entry="fn", runtime=lambda_.Runtime.PYTHON_3_12, layers=[layer], bytecode=False)
    layerkit.check(app)
    app.synth()
''')


@pytest.fixture
def small_app(tmp_path):
    """A CDK app of its own (cdk.json, one layer, one function), as a user's project is."""
    from tests.conftest import ROOT

    write(tmp_path / "app.py", APP)
    (tmp_path / "cdk.json").write_text(json.dumps({"app": f"{sys.executable} app.py",
                                                   "context": {"layerkit:builder": "local"}}))
    write(tmp_path / "layer" / "python" / "words.py", "WORD = 'one'\n")
    write(tmp_path / "fn" / "index.py", "import words\n\ndef handler(e, c):\n    return words.WORD\n")
    env = {**os.environ, "PATH": f"{ROOT / 'node_modules' / '.bin'}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    return tmp_path, env


def test_invoke_says_when_a_folder_changed_since_the_synth_and_synth_runs_the_new_code(small_app):
    folder, env = small_app

    def invoke_here(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "layerkit.cli", "invoke", "S/Fn", "--backend", "sandbox", *args],
                              cwd=folder, capture_output=True, text=True, env=env, timeout=600)

    first = invoke_here("--synth")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == "one"
    assert "changed since" not in first.stderr
    (folder / "layer" / "python" / "words.py").write_text("WORD = 'two'\n")
    stale = invoke_here()
    assert json.loads(stale.stdout) == "one"
    warnings = [line for line in stale.stderr.splitlines() if "changed since" in line]
    assert warnings == [f"layerkit: warning: {folder / 'layer'} changed since cdk.out was synthesized: this invoke "
                        "runs the synthesized code; pass --synth to synthesize first"]
    fresh = invoke_here("--synth")
    assert (json.loads(fresh.stdout), "changed since" in fresh.stderr) == ("two", False)
