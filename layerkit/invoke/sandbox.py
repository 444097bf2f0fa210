"""A Lambda-shaped execution environment without Docker: bubblewrap, the function's own Python, awslambdaric.

Inside: the interpreter's prefix at ``/var/lang`` (its site-packages hidden), awslambdaric and the bootstrap at
``/var/runtime``, the code read-only at ``/var/task``, the merged layers read-only at ``/opt``, a private
writable ``/tmp``, Lambda's user id, no host environment variables, and the host's ``/usr`` for the C library.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from layerkit.assembly import Function
from layerkit.errors import InvokeError
from layerkit.invoke.environment import LANG_DIR, RUNTIME_DIR, TASK_ROOT
from layerkit.invoke.layout import Layout
from layerkit.invoke.result import Invocation
from layerkit.invoke.runtime_api import Outcome, RuntimeApi
from layerkit.targets import host_architecture

#: Lambda gives a function's init phase 10 s of its own; the invoke's timeout counts from then on.
INIT_TIMEOUT_S = 10.0
#: Lambda runs functions as sbx_user1051.
LAMBDA_UID, LAMBDA_GID = 993, 990
#: Read-only host files a Python process commonly needs (certificates, name resolution).
HOST_ETC = ("ssl", "pki", "ca-certificates", "resolv.conf", "hosts", "nsswitch.conf")


def bwrap_binary() -> str:
    found = shutil.which("bwrap")
    if not found:
        raise InvokeError(
            "bubblewrap (bwrap) is not installed, and no Docker daemon answers: install it "
            "(apt-get install bubblewrap, dnf install bubblewrap, pacman -S bubblewrap) or start Docker"
        )
    return found


def check_architecture(function: Function) -> None:
    host = host_architecture()
    if function.architecture != host:
        raise InvokeError(
            f"function {function.id} is {function.architecture} and this machine is {host}: the sandbox runs "
            "native code only; invoke it on a machine of that architecture, or with Docker and QEMU emulation "
            "(--backend docker)"
        )


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/lib", "/lib64", "/bin", "/sbin"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for name in HOST_ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def sandbox_command(
    function: Function, layout: Layout, runtime_dir: Path, python: Path, env: dict[str, str]
) -> list[str]:
    """The bwrap command line that starts the function's execution environment."""
    prefix = python.parent.parent
    version = function.target.python_version
    command = [
        bwrap_binary(), "--unshare-all", "--share-net", "--die-with-parent", "--new-session",
        "--uid", str(LAMBDA_UID), "--gid", str(LAMBDA_GID),
        *_system_binds(),
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var",
        "--ro-bind", str(prefix), LANG_DIR,
        "--tmpfs", f"{LANG_DIR}/lib/python{version}/site-packages",  # the host's packages stay invisible
        "--ro-bind", str(runtime_dir), RUNTIME_DIR,
        "--ro-bind", str(layout.task), TASK_ROOT,
        "--ro-bind", str(layout.opt), "/opt",
        "--chdir", TASK_ROOT, "--clearenv",
    ]
    for key, value in env.items():
        command += ["--setenv", key, value]
    return [*command, f"{LANG_DIR}/bin/{python.name}", "-S", f"{RUNTIME_DIR}/bootstrap.py", function.handler]


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        found += [int(c) for c in children]
        todo += [int(c) for c in children]
    return found


def _peak_rss_mb(pid: int) -> int:
    """Peak resident memory of the environment's processes, as Lambda's "Max Memory Used"."""
    peak_kb = 0
    for child in _descendants(pid):
        try:
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except OSError:
            continue
    return max(1, round(peak_kb / 1024))


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": []}).encode()


class SandboxEnvironment:
    """One execution environment: started on the first invoke, reused by the next (warm), killed on timeout."""

    def __init__(self, function: Function, command_for: Callable[[str], list[str]], timeout_s: float) -> None:
        self.function = function
        self.timeout_s = timeout_s
        self._command_for = command_for  # runtime API address -> command line
        self._process: subprocess.Popen[bytes] | None = None
        self._api: RuntimeApi | None = None
        self._started_at = 0.0
        self._max_memory_mb = 1

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function.stack}-{self.function.logical_id}"

    def _start(self) -> None:
        self._api = RuntimeApi()
        self._api.start()
        self._started_at = time.perf_counter()
        self._process = subprocess.Popen(
            self._command_for(self._api.address),
            stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(), stderr=sys.stderr.fileno(),
            start_new_session=True,
        )

    def invoke(self, payload: bytes) -> Invocation:
        cold = self._process is None
        if cold:
            self._start()
        api, process = self._api, self._process
        assert api is not None
        assert process is not None
        pending = api.submit(payload, self.timeout_s, self.function_arn)
        submitted = time.perf_counter()
        outcome = self._wait(api, process, pending.request_id, submitted)
        finished = time.perf_counter()
        self._max_memory_mb = max(self._max_memory_mb, _peak_rss_mb(process.pid))
        init_ms = None
        if cold and api.first_poll_at is not None:
            init_ms = (api.first_poll_at - self._started_at) * 1000
            submitted = max(submitted, api.first_poll_at)
        ok = outcome.kind == "response"
        body = outcome.body
        if outcome.kind == "timeout":
            body = error_body("Sandbox.Timedout", f"Task timed out after {self.timeout_s:.2f} seconds")
        elif outcome.kind == "exited":
            body = error_body("Runtime.ExitError", f"RequestId: {pending.request_id} Error: Runtime exited "
                                                   f"with error: exit status {outcome.body.decode()}")
        if outcome.kind in ("timeout", "exited", "init_error"):
            self.close()  # Lambda discards such an environment; the next invoke starts cold
        return Invocation(pending.request_id, ok, body, (finished - submitted) * 1000, init_ms, self._max_memory_mb)

    def _wait(self, api: RuntimeApi, process: subprocess.Popen[bytes], request_id: str, submitted: float) -> Outcome:
        """The outcome of ``request_id``; the timeout counts from when the function took the event."""
        while True:
            took_event = api.first_poll_at
            deadline = (submitted + INIT_TIMEOUT_S if took_event is None
                        else max(submitted, took_event) + self.timeout_s)
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return Outcome("timeout", request_id)
            try:
                outcome = api.outcomes.get(timeout=min(remaining, 0.05))
            except queue.Empty:
                code = process.poll()
                if code is None:
                    continue
                try:  # an init error is posted just before the process exits
                    return api.outcomes.get(timeout=0.2)
                except queue.Empty:
                    return Outcome("exited", request_id, str(code).encode())
            if outcome.kind == "init_error" or outcome.request_id == request_id:
                return outcome

    def close(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._process = None
        if self._api is not None:
            self._api.stop()
            self._api = None
