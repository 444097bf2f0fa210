"""A Lambda-shaped execution environment without Docker: bubblewrap, the function's own Python, awslambdaric.

Inside: the interpreter's prefix at ``/var/lang`` (its site-packages hidden), awslambdaric and the bootstrap at
``/var/runtime``, the code read-only at ``/var/task``, the merged layers read-only at ``/opt``, a private
writable ``/tmp``, Lambda's user id, no host environment variables, and the host's ``/usr`` for the C library.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from layerkit.assembly import Function
from layerkit.errors import InvokeError
from layerkit.invoke.environment import LANG_DIR, RUNTIME_DIR, TASK_ROOT
from layerkit.invoke.layout import Layout
from layerkit.targets import host_architecture

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


class SandboxLauncher:
    """Runs the function's runtime in a bubblewrap sandbox (see :func:`sandbox_command`)."""

    startup_allowance_s = 0.0

    def __init__(self, command_for: Callable[[str], list[str]]) -> None:
        self._command_for = command_for  # Runtime API address -> command line
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, runtime_api: str) -> None:
        self._process = subprocess.Popen(
            self._command_for(runtime_api), stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
            stderr=sys.stderr.fileno(), start_new_session=True,
        )

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process is not None else -1

    def kill(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        self._process = None

    def max_memory_mb(self) -> int:
        """Peak resident memory of the sandbox's processes (the sandbox does not enforce the memory size)."""
        return _peak_rss_mb(self._process.pid) if self._process is not None else 1

    def out_of_memory(self) -> bool:
        return False
