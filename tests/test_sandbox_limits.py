"""The sandbox holds Lambda's limits on the function's code, which is as untrusted as any input: 1,024 processes
and threads, 1,024 open files, a ``/tmp`` that is disk of the function's ephemeral storage, a response the kit
reads no further than Lambda's 6,291,556 bytes, and nothing left behind when the kit itself is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from aws_cdk import App, Duration, Size, Stack
from aws_cdk import aws_lambda as lambda_

from layerkit import PythonFunction
from layerkit.assembly import Assembly
from layerkit.invoke import invoke_function
from tests.conftest import app_context

HANDLER = textwrap.dedent('''
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


@pytest.fixture(scope="module")
def assembly(tmp_path_factory, kit_cache) -> Path:
    src = tmp_path_factory.mktemp("src")
    (src / "fn").mkdir()
    (src / "fn" / "index.py").write_text(HANDLER)
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = App(outdir=str(outdir), context=app_context())
    stack = Stack(app, "S")
    PythonFunction(stack, "Small", entry=src / "fn", runtime=lambda_.Runtime.PYTHON_3_12, memory_size=128,
                   timeout=Duration.seconds(60), bytecode=False)
    PythonFunction(stack, "Large", entry=src / "fn", runtime=lambda_.Runtime.PYTHON_3_12, memory_size=2048,
                   timeout=Duration.seconds(60), bytecode=False)
    PythonFunction(stack, "Disk", entry=src / "fn", runtime=lambda_.Runtime.PYTHON_3_12, memory_size=256,
                   timeout=Duration.seconds(60), ephemeral_storage_size=Size.mebibytes(512), bytecode=False)
    app.synth()
    return outdir


def invoke(assembly: Path, name: str, event: dict):
    (result,) = invoke_function(Assembly.load(assembly).function(f"S/{name}"), [json.dumps(event).encode()],
                                backend="sandbox", log=lambda line: None)
    return result


def test_a_function_starts_no_more_than_lambdas_1024_processes(assembly):
    result = invoke(assembly, "Large", {"action": "processes", "count": 1100})
    assert result.ok, result.payload
    assert result.payload["error"] == "Resource temporarily unavailable"
    assert 1000 <= result.payload["started"] < 1024  # the runtime's own process and thread count too


def test_threads_count_against_the_same_1024(assembly):
    result = invoke(assembly, "Large", {"action": "threads", "count": 1100})
    assert result.ok, result.payload
    assert result.payload["error"] == "can't start new thread"
    assert 1000 <= result.payload["started"] < 1024


def test_a_function_opens_no_more_than_lambdas_1024_files(assembly):
    result = invoke(assembly, "Small", {"action": "files", "count": 1500})
    assert result.ok, result.payload
    assert result.payload["error"] == "Too many open files"
    assert 1000 <= result.payload["opened"] < 1024  # stdio and the runtime's own count too


def test_tmp_is_disk_of_the_ephemeral_storage_not_memory(assembly):
    written = invoke(assembly, "Disk", {"action": "tmp", "mb": 400})  # over the 256 MB memory size
    assert written.payload == {"written_mb": 400, "error": None}
    assert written.ok
    full = invoke(assembly, "Disk", {"action": "tmp", "mb": 600})  # over the 512 MB of /tmp
    assert full.payload == {"error": "No space left on device"}


def test_the_kit_reads_no_more_of_a_response_than_lambda_returns(assembly, tmp_path):
    """A function that answers 300 MB: the kit's own memory stays far below what the function sent."""
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent(f"""
        import json, sys
        from layerkit.cli import main

        def peak_mb():  # this process's own peak (getrusage's would count the parent's at the fork)
            status = open("/proc/self/status").read()
            return int(status.split("VmHWM:")[1].split()[0]) // 1024

        code = main(["invoke", "--assembly", {str(assembly)!r}, "S/Large", "--backend", "sandbox", "--event", "-"])
        print(json.dumps({{"code": code, "peak_mb": peak_mb()}}),
              file=sys.stderr)
    """))
    result = subprocess.run([sys.executable, str(probe)], input='{"action": "respond", "mb": 300}', text=True,
                            capture_output=True, timeout=300)
    outcome = json.loads(result.stderr.strip().splitlines()[-1])
    assert json.loads(result.stdout)["errorType"] == "Function.ResponseSizeTooLarge"
    assert outcome["code"] == 1
    assert outcome["peak_mb"] < 150, outcome


def _layerkit_cgroups() -> list[Path]:
    return [path for hierarchy in ("memory", "pids", "unified") for path in
            Path("/sys/fs/cgroup", hierarchy).rglob("layerkit-*") if path.is_dir()]


def _slirps() -> list[str]:
    found = subprocess.run(["pgrep", "-a", "slirp4netns"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if line]


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's cgroups need root here (CI runs as root)")
def test_nothing_outlives_a_killed_invoke(assembly):
    before_cgroups, before_slirps = _layerkit_cgroups(), _slirps()
    process = subprocess.Popen([sys.executable, "-m", "layerkit.cli", "invoke", "--assembly", str(assembly),
                                "S/Small", "--backend", "sandbox", "--event", "-"], stdin=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert process.stdin is not None
    assert process.stderr is not None
    process.stdin.write('{"action": "sleep", "seconds": 30}')
    process.stdin.close()
    for line in process.stderr:  # the function runs: its sandbox, cgroups and network are all up
        if "sleeping" in line:
            break
    assert len(_layerkit_cgroups()) > len(before_cgroups)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (_layerkit_cgroups() != before_cgroups or _slirps() != before_slirps):
        time.sleep(0.1)
    assert _layerkit_cgroups() == before_cgroups
    assert _slirps() == before_slirps
    assert not list(Path("/tmp").glob(f".layerkit-sandbox-{process.pid}-*"))
