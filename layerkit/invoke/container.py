"""The Docker backend: the function's AWS Lambda base image, its own runtime client, the kit's Runtime API.

The image's entrypoint (``/lambda-entrypoint.sh``) execs its runtime (``/var/runtime/bootstrap``) directly when
``AWS_LAMBDA_RUNTIME_API`` is set, exactly as on Lambda: the container joins the host's network and is pointed
at the kit's Runtime API on 127.0.0.1, so no emulator and no published port are involved. As on Lambda, the code
and the merged layers are mounted read-only at ``/var/task`` and ``/opt``, the rest of the file system is
read-only but ``/tmp``, the function runs as Lambda's user, and its memory size is a hard limit: a function that
exceeds it is killed, and the invoke gets Lambda's out-of-memory error.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

from layerkit.assembly import Function
from layerkit.core.errors import InvokeError
from layerkit.invoke.layout import Layout
from layerkit.invoke.runtime_api import RuntimeApi

#: How long a container may take to start before its runtime runs (a first run loads the image).
STARTUP_ALLOWANCE_S = 60.0
#: Lambda runs functions as sbx_user1051.
LAMBDA_USER = "993:990"


def docker_binary() -> str:
    found = shutil.which("docker")
    if not found:
        raise InvokeError("the docker client is not installed; install Docker (docs.docker.com/get-docker) or use "
                          "--backend sandbox on Linux")
    return found


def docker_command(function: Function, layout: Layout, env: dict[str, str], name: str) -> list[str]:
    """The ``docker run`` command line of one execution environment."""
    command = [
        docker_binary(), "run", "--name", name, "--network", "host",
        "--platform", function.target.docker_platform,
        "--memory", f"{function.memory_mb}m", "--memory-swap", f"{function.memory_mb}m",
        "--read-only", "--tmpfs", f"/tmp:rw,exec,size={function.ephemeral_storage_mb}m", "--user", LAMBDA_USER,
        "--volume", f"{Path(layout.task).resolve()}:/var/task:ro",
        "--volume", f"{Path(layout.opt).resolve()}:/opt:ro",
    ]
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    return [*command, function.target.lambda_image, function.handler]


class ContainerLauncher:
    """Runs the function's runtime in a container of its Lambda base image."""

    enforces_memory = True

    def __init__(self, function: Function, layout: Layout, env_for: Callable[[str], dict[str, str]]) -> None:
        self.function = function
        self.layout = layout
        self._env_for = env_for  # Runtime API address -> the function's environment
        self._process: subprocess.Popen[bytes] | None = None
        self._name = ""
        self._memory_file: Path | None = None

    def start(self, api: RuntimeApi) -> IO[bytes]:
        """Start the container, its runtime pointed at ``api`` on this machine's 127.0.0.1 (the container shares
        the host's network: the engines these machines run have no bridge); the container's output."""
        self._name = f"layerkit-{uuid.uuid4().hex[:12]}"
        self._memory_file = None
        command = docker_command(self.function, self.layout, self._env_for(api.listen_here()), self._name)
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT)
        assert self._process.stdout is not None
        return self._process.stdout

    def exit_code(self) -> int | None:
        return self._process.poll() if self._process is not None else -1

    def wait_running(self) -> float:
        """When the container runs (its image loaded, its runtime started): the init is timed from then."""
        deadline = time.monotonic() + STARTUP_ALLOWANCE_S
        while time.monotonic() < deadline and self.exit_code() is None:
            if self._inspect("{{.State.Running}}") == "true":
                break
            time.sleep(0.01)
        return time.perf_counter()

    def kill(self) -> None:
        """Stop and remove the container (kept after it exits until now, so that its OOM state can be read)."""
        if self._process is None:
            return
        subprocess.run([docker_binary(), "rm", "--force", self._name], capture_output=True, check=False)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def _inspect(self, template: str) -> str:
        proc = subprocess.run([docker_binary(), "inspect", "--format", template, self._name], capture_output=True,
                              text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    def max_memory_mb(self) -> int:
        """The container's peak memory, from its cgroup (v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``)."""
        if self._memory_file is None:
            self._memory_file = self._find_memory_file()
        peak = 0
        if self._memory_file is not None:
            with contextlib.suppress(OSError, ValueError):
                peak = int(self._memory_file.read_text().split()[0])
        if not peak:  # a Docker engine in a VM (macOS, Windows): ask inside the container
            proc = subprocess.run([docker_binary(), "exec", self._name, "/bin/sh", "-c",
                                   "cat /sys/fs/cgroup/memory.peak 2>/dev/null || "
                                   "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes"],
                                  capture_output=True, text=True, check=False)
            with contextlib.suppress(ValueError):
                peak = int(proc.stdout.split()[0]) if proc.stdout.split() else 0
        return max(1, round(peak / 1024 / 1024))

    def _find_memory_file(self) -> Path | None:
        pid = self._inspect("{{.State.Pid}}")
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines() if pid and pid != "0" else []
        except OSError:
            return None
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                return Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.max_usage_in_bytes"
            if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
                return Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.peak"
        return None

    def out_of_memory(self) -> bool:
        """Whether the kernel killed the container for exceeding its memory size."""
        return self._inspect("{{.State.OOMKilled}}") == "true"
