"""The apps the invoke tests run, and how they run them: each synthesized once per session (their fixtures are
registered in tests/invoke/conftest.py)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from aws_cdk import App, Duration, Size, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit import PythonFunction, SharedPythonLayer
from layerkit.assembly import Assembly
from layerkit.invoke import invoke_function
from tests.conftest import app_context
from tests.helpers import write_file

LAYERS_HANDLER = textwrap.dedent('''
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


@dataclass
class LayersApp:
    assembly: Assembly
    backend: str
    version: str


@pytest.fixture(scope="session", params=["sandbox", "docker"])
def layers_app(request, tmp_path_factory, kit_cache) -> LayersApp:
    backend = request.param
    if backend == "docker":
        request.getfixturevalue("lambda_images")
    runtime = RUNTIMES[backend]
    src = tmp_path_factory.mktemp("src")
    write_file(src / "first" / "python" / "x.py", "VALUE = 'first'\n")
    write_file(src / "second" / "python" / "x.py", "VALUE = 'second'\n")
    # A .pth file in a layer adds a folder to sys.path, as site.addsitedir does on Lambda.
    write_file(src / "vendor" / "python" / "vendor.pth", "/opt/python/_vendor\n")
    write_file(src / "vendor" / "python" / "_vendor" / "vendored.py", "WHERE = __file__\n")
    write_file(src / "too_deep" / "python" / "pkg" / "python" / "mod.py", "VALUE = 1\n")
    write_file(src / "probe" / "handler.py", LAYERS_HANDLER)
    write_file(src / "deep" / "handler.py", "import mod\n\ndef handler(event, context):\n    return mod.VALUE\n")

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
    return LayersApp(Assembly.load(cdk_app.synth().directory), backend, runtime.name.removeprefix("python"))


def fn_id(layers_app: LayersApp, stack: str) -> str:
    (fn,) = [f for f in layers_app.assembly.functions() if f.stack == stack]
    return fn.id


def invoke_layers(layers_app: LayersApp, stack, *events, **options):
    return invoke_function(layers_app.assembly.function(fn_id(layers_app, stack)),
                           [json.dumps(e).encode() for e in events],
                           backend=layers_app.backend, **options)


def cli_layers(layers_app: LayersApp, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "layerkit.cli", "invoke", "--assembly",
                           str(layers_app.assembly.directory), "--backend", layers_app.backend, *args],
                          capture_output=True, text=True, input=stdin, timeout=300)


# -- the example app's own functions ---------------------------------------------------------------------
@pytest.fixture(scope="session", params=["sandbox", "docker"])
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


PROBE_HANDLER = textwrap.dedent('''
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
            line = f"the handler says {event.get('n', 0)}"
            print("\\n".join([line] * event.get("times", 1)), flush=True)  # (many lines: one write)
            return {"printed": True}
        if action == "sdk":
            import boto3, botocore
            return {"boto3": boto3.__version__, "botocore": botocore.__version__,
                    "from": os.path.dirname(os.path.dirname(boto3.__file__))}
        return {"version": "one"}
''')


@dataclass
class ProbeApp:
    assembly: Assembly
    backend: str
    outdir: Path


def _probe_app(backend: str, tmp_path_factory) -> ProbeApp:
    src = tmp_path_factory.mktemp("src")
    write_file(src / "fn" / "index.py", PROBE_HANDLER)
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
    return ProbeApp(Assembly.load(outdir), backend, outdir)


@pytest.fixture(scope="session", params=["sandbox", "docker"])
def probe_app(request, tmp_path_factory, kit_cache) -> ProbeApp:
    """The probe functions, for each backend (python3.12 in the sandbox, python3.13 in the stand-in image)."""
    if request.param == "docker":
        request.getfixturevalue("lambda_images")
        return _probe_app("docker", tmp_path_factory)
    return request.getfixturevalue("probe_sandbox_app")


@pytest.fixture(scope="session")
def probe_sandbox_app(tmp_path_factory, kit_cache) -> ProbeApp:
    """The probe functions for the sandbox alone: what is about the sandbox's own network and limits."""
    return _probe_app("sandbox", tmp_path_factory)


@pytest.fixture(scope="session")
def probe_container_app(lambda_images, tmp_path_factory, kit_cache) -> ProbeApp:
    return _probe_app("docker", tmp_path_factory)


def invoke_probe(probe_app: ProbeApp, name: str, *events: dict, **options):
    return invoke_function(probe_app.assembly.function(f"S/{name}"), [json.dumps(e).encode() for e in events],
                           backend=probe_app.backend, **options)


def cli_probe(probe_app: ProbeApp, *args: str, stdin: str | None = None, env: dict[str, str] | None = None):
    return subprocess.run([sys.executable, "-m", "layerkit.cli", "invoke", "--assembly", str(probe_app.outdir),
                           "--backend", probe_app.backend, *args], capture_output=True, text=True, input=stdin,
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


def assert_out_of_memory_then_fresh(results) -> None:
    first, second = results
    assert (first.ok, first.payload["errorType"]) == (False, "Runtime.OutOfMemory"), first.payload
    assert first.max_memory_mb == 128
    assert first.report["status"] == "error"
    assert (second.ok, second.payload, second.init_ms is not None) == (True, 16 * 1024 * 1024, True)


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

    write_file(tmp_path / "app.py", APP)
    (tmp_path / "cdk.json").write_text(json.dumps({"app": f"{sys.executable} app.py",
                                                   "context": {"layerkit:builder": "local"}}))
    write_file(tmp_path / "layer" / "python" / "words.py", "WORD = 'one'\n")
    write_file(tmp_path / "fn" / "index.py", "import words\n\ndef handler(e, c):\n    return words.WORD\n")
    env = {**os.environ, "PATH": f"{ROOT / 'node_modules' / '.bin'}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT)}
    return tmp_path, env


LIMITS_HANDLER = textwrap.dedent('''
    import os, subprocess, threading, time

    def handler(event, context):
        action = event["action"]
        if action == "processes":
            started = []
            try:
                for _ in range(event["count"]):
                    started.append(subprocess.Popen(["sleep", "20"]))
            except OSError as error:
                outcome = {"started": len(started), "error": error.strerror}
            else:
                outcome = {"started": len(started), "error": None}
            for process in started:
                process.kill()
                process.wait()
            return outcome
        if action == "threads":
            stop = threading.Event()
            threads = []
            try:
                for _ in range(event["count"]):
                    thread = threading.Thread(target=stop.wait)
                    thread.start()
                    threads.append(thread)
            except RuntimeError as error:
                outcome = {"started": len(threads), "error": str(error)}
            else:
                outcome = {"started": len(threads), "error": None}
            stop.set()
            for thread in threads:
                thread.join()
            return outcome
        if action == "files":
            opened = []
            try:
                for _ in range(event["count"]):
                    opened.append(open("/var/task/index.py"))
            except OSError as error:
                return {"opened": len(opened), "error": error.strerror}
            return {"opened": len(opened), "error": None}
        if action == "tmp":
            try:
                with open("/tmp/data.bin", "wb") as file:
                    for _ in range(event["mb"]):
                        file.write(b"\\0" * 1024 * 1024)
                        file.flush()
            except OSError as error:
                return {"error": error.strerror}
            finally:
                written = os.path.getsize("/tmp/data.bin")
                os.unlink("/tmp/data.bin")
            return {"written_mb": written // (1024 * 1024), "error": None}
        if action == "respond":
            return "x" * event["mb"] * 1024 * 1024
        if action == "sleep":
            print("sleeping", flush=True)
            time.sleep(event["seconds"])
            return "slept"
        return None
''')


def _limits_app(runtime: lambda_.Runtime, tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    (src / "fn").mkdir()
    (src / "fn" / "index.py").write_text(LIMITS_HANDLER)
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(outdir=str(outdir), context=app_context())
    stack = Stack(app, "S")
    PythonFunction(stack, "Small", entry=src / "fn", runtime=runtime, memory_size=128,
                   timeout=Duration.seconds(60), bytecode=False)
    PythonFunction(stack, "Large", entry=src / "fn", runtime=runtime, memory_size=2048,
                   timeout=Duration.seconds(60), bytecode=False)
    PythonFunction(stack, "Disk", entry=src / "fn", runtime=runtime, memory_size=256,
                   timeout=Duration.seconds(60), ephemeral_storage_size=Size.mebibytes(512), bytecode=False)
    app.synth()
    return outdir


@pytest.fixture(scope="session")
def limits_assembly(tmp_path_factory, kit_cache) -> Path:
    """The limit probes, for the sandbox (python3.12)."""
    return _limits_app(lambda_.Runtime.PYTHON_3_12, tmp_path_factory)


@pytest.fixture(scope="session", params=["sandbox", "docker"])
def limits_app(request, tmp_path_factory, kit_cache) -> tuple[Path, str]:
    """The limit probes for each backend (python3.13 in the stand-in image): (assembly, backend)."""
    if request.param == "docker":
        request.getfixturevalue("lambda_images")
        return _limits_app(lambda_.Runtime.PYTHON_3_13, tmp_path_factory), "docker"
    return request.getfixturevalue("limits_assembly"), "sandbox"


def invoke_limits(limits: Path | tuple[Path, str], name: str, event: dict):
    assembly, backend = limits if isinstance(limits, tuple) else (limits, "sandbox")
    (result,) = invoke_function(Assembly.load(assembly).function(f"S/{name}"), [json.dumps(event).encode()],
                                backend=backend, log=lambda line: None)
    return result


def _layerkit_cgroups() -> list[Path]:
    return [path for hierarchy in ("memory", "pids", "unified") for path in
            Path("/sys/fs/cgroup", hierarchy).rglob("layerkit-*") if path.is_dir()]


def _slirps() -> list[str]:
    found = subprocess.run(["pgrep", "-a", "slirp4netns"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if line]
