"""The Docker backend: the function's AWS Lambda base image, its own runtime client, the kit's Runtime API.

The container holds the function as the sandbox does (:mod:`.sandbox`), in the image Lambda itself uses:

- **Network**: its own, on the engine's default bridge (outbound internet through the engine's NAT, nothing of
  this machine's 127.0.0.1); none where the engine has no bridge (a rootless or ``--bridge=none`` engine: the
  invoke says so), this machine's only with ``--network host``. The Runtime API reaches it the sandbox's way: the
  kit's bootstrap, run first by the image's own Python, makes the API's listening socket on the container's own
  127.0.0.1 and hands it to the kit over a unix socket mounted in (``SCM_RIGHTS``), then execs the image's
  entrypoint, which runs the image's runtime client against it. No port is published, nothing else is mounted.
- **File system**: the code and the merged layers read-only at ``/var/task`` and ``/opt``, the rest read-only but
  ``/tmp``, which is disk of the function's ephemeral storage (an ext4 file of that size, mounted by the engine)
  where this machine allows it, else the engine's tmpfs of that size.
- **Limits**: its memory size as a hard limit (a function that exceeds it is killed, and the invoke gets
  Lambda's out-of-memory error), 1,024 processes and threads, 1,024 open files, Lambda's user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

from layerkit.assembly import Function
from layerkit.core.errors import InvokeError
from layerkit.docker.engine import has_bridge_network
from layerkit.invoke.layout import Layout
from layerkit.invoke.runtime_api import RuntimeApi
from layerkit.invoke.sandbox import Network, loop_mounts, make_file_system, received_listener

#: How long a container may take to start before its runtime runs (a first run loads the image).
STARTUP_ALLOWANCE_S = 60.0
#: Lambda runs functions as sbx_user1051.
LAMBDA_USER = "993:990"
LAMBDA_IDS = (993, 990)
#: Lambda's caps on processes and threads, and on open files.
MAX_TASKS = 1024
MAX_OPEN_FILES = 1024
#: Where the Runtime API listens inside the container (its own loopback: any port is free).
INSIDE_ADDRESS = "127.0.0.1:9001"
#: Where the kit's bootstrap and the hand-over socket are mounted in the container.
KIT_DIR = "/var/run/layerkit"
#: The image's own Python (the AWS images and the stand-ins keep it under /var/lang).
IMAGE_PYTHON = "/var/lang/bin/python3"
BOOTSTRAP = Path(__file__).with_name("bootstrap.py")


def docker_binary() -> str:
    found = shutil.which("docker")
    if not found:
        raise InvokeError("the docker client is not installed; install Docker (docs.docker.com/get-docker) or use "
                          "--backend sandbox on Linux")
    return found


def network_option(network: Network) -> str:
    """The container's network: its own on the engine's bridge, or none without one; the engine's with ``host``."""
    if network is Network.HOST:
        return "host"
    if network is Network.NONE or not has_bridge_network():
        return "none"
    return "bridge"


def docker_command(function: Function, layout: Layout, env: dict[str, str], name: str, *, network: str,
                   kit_dir: Path, tmp: list[str]) -> list[str]:
    """The ``docker run`` command line of one execution environment."""
    command = [
        docker_binary(), "run", "--name", name, "--network", network,
        "--platform", function.target.docker_platform,
        "--memory", f"{function.memory_mb}m", "--memory-swap", f"{function.memory_mb}m",
        "--pids-limit", str(MAX_TASKS), "--ulimit", f"nofile={MAX_OPEN_FILES}:{MAX_OPEN_FILES}",
        "--read-only", *tmp, "--user", LAMBDA_USER,
        "--volume", f"{Path(layout.task).resolve()}:/var/task:ro",
        "--volume", f"{Path(layout.opt).resolve()}:/opt:ro",
        "--volume", f"{kit_dir.resolve()}:{KIT_DIR}",
        "--entrypoint", IMAGE_PYTHON,
    ]
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    return [*command, function.target.lambda_image, f"{KIT_DIR}/bootstrap.py", "--then",
            "/lambda-entrypoint.sh", function.handler]


class ContainerLauncher:
    """Runs the function's runtime in a container of its Lambda base image."""

    enforces_memory = True

    def __init__(self, function: Function, layout: Layout, env_for: Callable[[str], dict[str, str]],
                 network: Network = Network.SANDBOX, log: Callable[[str], None] | None = None) -> None:
        self.function = function
        self.layout = layout
        self._env_for = env_for  # Runtime API address -> the function's environment
        self._network = network
        self._log = log or (lambda _: None)
        self._warned = False
        self._process: subprocess.Popen[bytes] | None = None
        self._name = ""
        self._memory_file: Path | None = None
        self._kit_dir: Path | None = None
        self._image: Path | None = None
        self._loop: str | None = None  # the loop device of /tmp's file system, detached with the container

    def start(self, api: RuntimeApi) -> IO[bytes]:
        """Start the container; its runtime hands the kit the Runtime API's socket, made on the container's own
        loopback, and ``api`` serves on it. The container's output."""
        network = network_option(self._network)
        if network == "none" and self._network is Network.SANDBOX and not self._warned:
            self._log("layerkit: the Docker engine has no bridge network, so the function runs without a network "
                      "(--network host shares the engine's)")
            self._warned = True
        self._name = f"layerkit-{uuid.uuid4().hex[:12]}"
        self._memory_file = None
        self._kit_dir = Path(tempfile.mkdtemp(prefix="layerkit-container-"))
        self._kit_dir.chmod(0o755)  # Lambda's user reads the bootstrap and connects to the socket
        shutil.copyfile(BOOTSTRAP, self._kit_dir / "bootstrap.py")
        handoff = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        handoff.bind(str(self._kit_dir / "handoff.sock"))
        (self._kit_dir / "handoff.sock").chmod(0o777)
        handoff.listen(1)
        env = {**self._env_for(INSIDE_ADDRESS), "LAYERKIT_RUNTIME_API_HANDOFF": f"{KIT_DIR}/handoff.sock"}
        command = docker_command(self.function, self.layout, env, self._name, network=network,
                                 kit_dir=self._kit_dir, tmp=self._tmp())
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                             stderr=subprocess.STDOUT)
            listener = received_listener(handoff, lambda: self.exit_code() is None)
            if listener is None:
                raise InvokeError(f"function {self.function.id}: its container never handed over the Runtime API's "
                                  f"socket (is {self.function.target.lambda_image} a Lambda base image with "
                                  f"{IMAGE_PYTHON}?)")
            api.serve(listener)
        except BaseException:
            self.kill()
            raise
        finally:
            handoff.close()
        assert self._process.stdout is not None
        return self._process.stdout

    def _tmp(self) -> list[str]:
        """``/tmp`` of the function's ephemeral storage on disk: an ext4 file the engine mounts (and unmounts
        with the container), where this machine allows it and the engine is this machine's; else its tmpfs."""
        size = self.function.ephemeral_storage_mb
        if loop_mounts() and _engine_is_local() and shutil.which("losetup"):
            assert self._kit_dir is not None
            self._image = self._kit_dir / "tmp.ext4"
            if make_file_system(self._image, size, owner=LAMBDA_IDS):
                attached = subprocess.run(["losetup", "--find", "--show", str(self._image)], capture_output=True,
                                          text=True, check=False, timeout=30)
                if attached.returncode == 0:
                    self._loop = attached.stdout.strip()
                    return ["--mount", "type=volume,dst=/tmp,volume-driver=local,volume-opt=type=ext4,"
                                       f"volume-opt=device={self._loop},volume-opt=o=nosuid"]
        return ["--tmpfs", f"/tmp:rw,exec,size={size}m"]

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
        """Stop and remove the container (kept after it exits until now, so that its OOM state can be read), its
        volume and the kit's folder with it."""
        if self._kit_dir is not None and self._process is None:
            shutil.rmtree(self._kit_dir, ignore_errors=True)
            self._kit_dir = None
        if self._process is None:
            return
        subprocess.run([docker_binary(), "rm", "--force", "--volumes", self._name], capture_output=True, check=False)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None
        if self._loop is not None:
            subprocess.run(["losetup", "--detach", self._loop], capture_output=True, check=False, timeout=30)
            self._loop = None
        if self._kit_dir is not None:
            shutil.rmtree(self._kit_dir, ignore_errors=True)
            self._kit_dir = None

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


def _engine_is_local() -> bool:
    """Whether the engine runs on this machine, so that a file of it can be mounted (a unix socket)."""

    host = os.environ.get("DOCKER_HOST", "")
    return not host or host.startswith("unix://")
