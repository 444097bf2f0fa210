"""What the Docker engine on this machine can build: asked of the engine itself, never guessed from the client.

A daemon that answers ``docker info`` is not enough. A build for a runtime and architecture also needs the
runtime's build image for that platform (in the engine, or pulled now), a daemon that runs that platform (an
x86_64 daemon without emulation cannot run an arm64 image, and one that silently runs the x86_64 image instead
installs x86_64 wheels), and a bundling container that reaches the package index (an engine started without a
bridge network gives containers no network but the host's). Each is tested by running the image once, with the
network the build would use: ``python`` in the container prints its machine and connects to the index.

Every answer is cached for the process: an app asks once per target, not once per construct.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from layerkit.core.errors import redact
from layerkit.core.index_settings import PYPI, IndexSettings

Answer = TypeVar("Answer")

DOCKER_INFO_TIMEOUT_S = 20
#: How long the probe container may take to start and connect: a cold engine starts a container in ~1 s.
PROBE_TIMEOUT_S = 60
#: The network a build uses where the engine has no bridge network and none is given.
HOST_NETWORK = "host"

_PROBE = """
import platform, socket, sys
print(platform.machine(), flush=True)
host, port = sys.argv[1], int(sys.argv[2])
try:
    socket.create_connection((host, port), timeout=10).close()
except OSError as error:
    print(f"unreachable: {error}", flush=True)
"""


def _per_engine(function: Callable[..., Answer]) -> Callable[..., Answer]:
    """``function`` cached per engine (``DOCKER_HOST``, ``DOCKER_CONTEXT``) and arguments: a synth asks once per
    construct, and a process that moves to another engine asks that one anew."""
    cached = functools.cache(lambda engine, *arguments: function(*arguments))

    @functools.wraps(function)
    def per_engine(*arguments: Any) -> Answer:
        return cached((os.environ.get("DOCKER_HOST", ""), os.environ.get("DOCKER_CONTEXT", "")), *arguments)

    return per_engine


def _client() -> str | None:
    return shutil.which("docker")


def docker_available() -> bool:
    """True when a ``docker`` client is on PATH and its daemon answers ``docker info``."""
    executable = _client()
    return executable is not None and _daemon_answers(executable)


@_per_engine
def _daemon_answers(executable: str) -> bool:
    # Cached: a synth asks once per construct, and `docker info` takes a second when it fails.
    try:
        proc = subprocess.run([executable, "info"], capture_output=True, timeout=DOCKER_INFO_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _docker(*arguments: str, timeout: float = PROBE_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([_client() or "docker", *arguments], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(arguments, 124, "", f"docker {arguments[0]} took over {timeout:.0f} s")
    except OSError as error:
        return subprocess.CompletedProcess(arguments, 127, "", str(error))


def last_line(text: str, fallback: str) -> str:
    """The last non-empty line of a tool's output: Docker puts the reason there."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return redact(lines[-1]) if lines else fallback


@_per_engine
def image_present(image: str, platform: str | None = None) -> bool:
    """Whether ``image`` (for ``platform``, e.g. ``linux/arm64``, when given) is in the engine already. A tag in the
    engine holds one platform: an x86_64 image under the name does not make it available for arm64."""
    inspected = _docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image)
    return inspected.returncode == 0 and (platform is None or inspected.stdout.strip() == platform)


@_per_engine
def image_unavailable(image: str, platform: str | None = None) -> str | None:
    """None when ``image`` (for ``platform``) is in the engine, pulled now if need be; else why it cannot be had.
    Only where Docker was asked for: ``auto`` never pulls (:func:`image_present`)."""
    if image_present(image, platform):
        return None
    pulled = _docker("pull", "--quiet", *(["--platform", platform] if platform else []), image, timeout=1800)
    if pulled.returncode == 0:
        return None
    return last_line(pulled.stderr, f"docker pull {image} failed")


@_per_engine
def has_bridge_network() -> bool:
    """Whether the engine has Docker's default ``bridge`` network (``dockerd --bridge=none`` has none)."""
    proc = _docker("network", "ls", "--format", "{{.Name}}")
    return proc.returncode != 0 or "bridge" in proc.stdout.split()


def build_network(explicit: str | None) -> str | None:
    """The network of a bundling container: the one given, else ``host`` where the engine has no bridge network
    (a container on the default network would have none), else Docker's default."""
    if explicit:
        return explicit
    return None if has_bridge_network() else HOST_NETWORK


def index_url() -> str:
    """The package index a bundling container installs from, as every builder reads the settings."""
    return IndexSettings.of(os.environ).primary


@dataclass(frozen=True)
class Refusal:
    """Why the engine cannot build a target, and what would let it."""

    reason: str
    fix: str

    def __str__(self) -> str:
        return f"{self.reason}; {self.fix}"


@_per_engine
def cannot_build(image: str, platform: str, machine: str, network: str | None, index: str) -> Refusal | None:
    """None when a container of ``image`` for ``platform`` runs as ``machine`` (``x86_64``, ``aarch64``) and
    reaches ``index`` on ``network``; else what stops it."""
    if why := image_unavailable(image, platform):
        return Refusal(f"{image} for {platform} is not in the Docker engine and cannot be pulled ({why})",
                       f"pull it (docker pull --platform {platform} {image})")
    parts = urlsplit(index)
    host = parts.hostname or urlsplit(PYPI).hostname
    port = parts.port or (80 if parts.scheme == "http" else 443)
    network_option = ["--network", network] if network else []
    proc = _docker("run", "--rm", "--platform", platform, *network_option, "--entrypoint", "python", image,
                   "-I", "-c", _PROBE, host, str(port))
    out = proc.stdout.split("\n")
    if proc.returncode != 0:
        why = last_line(proc.stderr, f"docker run exited with {proc.returncode}")
        if "exec format error" in proc.stderr:
            return Refusal(f"the Docker engine cannot run {platform} containers ({why}): it has no emulation for "
                           f"{machine}", f"install QEMU emulation for {platform} (binfmt_misc) on the Docker host")
        return Refusal(f"{image} does not run a Python for {platform} here ({why})",
                       "use a build image with python on PATH")
    if out[0].strip() != machine:
        return Refusal(f"{image} for {platform} runs as {out[0].strip() or 'nothing'} here, not {machine}: the "
                       "engine cannot run that platform", f"install QEMU emulation for {platform} on the Docker host")
    if len(out) > 1 and out[1].startswith("unreachable"):
        where = f"network {network}" if network else "Docker's default network"
        fix = ("set -c layerkit:docker-network=host (docker_network='host')" if network != HOST_NETWORK
               else "let the Docker host reach it, or set PIP_INDEX_URL to an index it reaches")
        return Refusal(f"the bundling container cannot reach the package index {redact(host)}:{port} on {where} "
                       f"({out[1].removeprefix('unreachable: ')})", fix)
    return None
