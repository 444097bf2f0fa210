"""The bubblewrap sandbox (layerkit.invoke.sandbox): no part of this machine's network, a read-only file system but
/tmp on disk, Lambda's limits on processes and files, nothing left running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.invoke.apps import _layerkit_cgroups, _slirps, cli_probe, invoke_limits, invoke_probe


# -- 1. the function's own network --------------------------------------------------------------------------
def test_a_function_reaches_nothing_of_this_machine_by_default(probe_sandbox_app, host_server):
    port, abstract = host_server
    (result,) = invoke_probe(probe_sandbox_app, "Probe", {"action": "connect", "abstract": abstract, "targets": {
        "host loopback": ["127.0.0.1", port], "metadata": ["169.254.169.254", 80], "private": ["10.1.2.3", 80],
        "gateway": ["10.0.2.2", port]}})
    assert result.ok, result.payload
    assert {name: outcome.split(":")[0] for name, outcome in result.payload.items()} == {
        "host loopback": "refused", "metadata": "refused", "private": "refused", "gateway": "refused",
        "abstract": "refused"}


def test_a_port_the_function_listens_on_is_not_one_of_this_machine(probe_sandbox_app):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    results: list = []
    thread = threading.Thread(target=lambda: results.extend(
        invoke_probe(probe_sandbox_app, "Probe", {"action": "listen", "port": port, "hold": 4})))
    thread.start()
    time.sleep(2.5)  # the function is listening now
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    thread.join()
    assert results[0].payload == "listened"


def test_the_function_reaches_the_internet_through_slirp4netns(probe_sandbox_app):
    if shutil.which("slirp4netns") is None:
        pytest.fail("slirp4netns is missing: 'make test' installs it (sandbox-tools)")
    (result,) = invoke_probe(probe_sandbox_app, "Probe", {"action": "fetch", "url": "https://pypi.org/simple/six/"})
    assert result.payload == 200


def test_network_host_reaches_a_local_server_and_is_the_documented_way_to(probe_sandbox_app, host_server):
    port, _ = host_server
    event = json.dumps({"action": "connect", "targets": {"emulator": ["127.0.0.1", port]}})
    shared = cli_probe(probe_sandbox_app, "S/Probe", "--network", "host", "--event", "-", stdin=event)
    assert shared.returncode == 0, shared.stderr
    assert json.loads(shared.stdout) == {"emulator": "reached"}
    isolated = cli_probe(probe_sandbox_app, "S/Probe", "--event", "-", stdin=event)
    assert json.loads(isolated.stdout)["emulator"].startswith("refused")


def test_without_a_user_mode_network_tool_the_function_has_no_network_and_is_told_so(probe_sandbox_app, tmp_path):
    bin_dir = tmp_path / "bin"  # this PATH without slirp4netns
    bin_dir.mkdir()
    for tool in ("bwrap", "nsenter", "ip", "sh"):
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    result = cli_probe(probe_sandbox_app, "S/Probe", "--event", "-", stdin='{"action": "fetch", "url": "https://pypi.org/simple/six/"}',
                 env={"PATH": f"{Path(sys.executable).parent}:{bin_dir}"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout).startswith("failed:")
    notes = [line for line in result.stderr.splitlines() if "slirp4netns" in line]
    assert notes == ["layerkit: no slirp4netns on this machine, so the function runs without a network (install "
                     "slirp4netns for its outbound internet, or pass --network host to share this machine's)"]


# -- 2. Lambda's file system -----------------------------------------------------------------------------
def test_everything_but_tmp_is_read_only(probe_app):
    folders = ["/", "/etc", "/var", "/var/task", "/opt", "/var/runtime", "/var/lang", "/tmp"]
    (result,) = invoke_probe(probe_app, "Probe", {"action": "write", "folders": folders})
    expected = {folder: "Read-only file system" for folder in folders}
    expected["/tmp"] = "written"
    assert result.payload == expected


def test_a_function_starts_no_more_than_lambdas_1024_processes(limits_app):
    result = invoke_limits(limits_app, "Large", {"action": "processes", "count": 1100})
    assert result.ok, result.payload
    assert result.payload["error"] == "Resource temporarily unavailable"
    assert 1000 <= result.payload["started"] < 1024  # the runtime's own process and thread count too


def test_threads_count_against_the_same_1024(limits_app):
    result = invoke_limits(limits_app, "Large", {"action": "threads", "count": 1100})
    assert result.ok, result.payload
    assert result.payload["error"] == "can't start new thread"
    assert 1000 <= result.payload["started"] < 1024


def test_a_function_opens_no_more_than_lambdas_1024_files(limits_app):
    result = invoke_limits(limits_app, "Small", {"action": "files", "count": 1500})
    assert result.ok, result.payload
    assert result.payload["error"] == "Too many open files"
    assert 1000 <= result.payload["opened"] < 1024  # stdio and the runtime's own count too


def test_tmp_is_disk_of_the_ephemeral_storage_not_memory(limits_app):
    written = invoke_limits(limits_app, "Disk", {"action": "tmp", "mb": 400})  # over the 256 MB memory size
    assert written.payload == {"written_mb": 400, "error": None}
    assert written.ok
    full = invoke_limits(limits_app, "Disk", {"action": "tmp", "mb": 600})  # over the 512 MB of /tmp
    assert full.payload == {"error": "No space left on device"}


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's cgroups need root here (CI runs as root)")
def test_nothing_outlives_a_killed_invoke(limits_assembly):
    before_cgroups, before_slirps = _layerkit_cgroups(), _slirps()
    process = subprocess.Popen([sys.executable, "-m", "layerkit.cli", "invoke", "--assembly", str(limits_assembly),
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
