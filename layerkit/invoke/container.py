"""The Docker backend: the public Lambda base image, with its Runtime Interface Emulator, as ``sam local``.

The code and the merged layers are mounted read-only at ``/var/task`` and ``/opt``; the emulator inside the
image serves the Runtime API and the invoke endpoint, which this module calls once per event.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from layerkit.assembly import Function
from layerkit.errors import InvokeError
from layerkit.invoke.layout import Layout
from layerkit.invoke.result import Invocation

INVOKE_PATH = "/2015-03-31/functions/function/invocations"
#: How long the container may take to start before the kit gives up (pulls can be slow).
STARTUP_TIMEOUT_S = 120.0


def base_image(function: Function) -> str:
    """``public.ecr.aws/lambda/python:3.12`` for a python3.12 function."""
    return function.target.lambda_image


def docker_command(function: Function, layout: Layout, env: dict[str, str], port: int) -> list[str]:
    docker = shutil.which("docker") or "docker"
    command = [
        docker, "run", "--rm",
        "--platform", function.target.docker_platform,
        "--publish", f"127.0.0.1:{port}:8080",
        "--memory", f"{function.memory_mb}m",
        "--volume", f"{Path(layout.task).resolve()}:/var/task:ro",
        "--volume", f"{Path(layout.opt).resolve()}:/opt:ro",
    ]
    for key, value in env.items():
        command += ["--env", f"{key}={value}"]
    return [*command, base_image(function), function.handler]


def container_environment(function: Function, lambda_env: dict[str, str]) -> dict[str, str]:
    """What the emulator does not set by itself: the function's name, memory, timeout and own variables."""
    keep = ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "AWS_DEFAULT_REGION")
    env = {key: lambda_env[key] for key in keep}
    env["AWS_LAMBDA_FUNCTION_TIMEOUT"] = str(function.timeout_s)
    env.update({k: v for k, v in lambda_env.items() if k in function.environment or k not in _RESERVED})
    return env


_RESERVED = {
    "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_RUNTIME_API", "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR", "_HANDLER", "TZ", "LANG", "PATH", "LD_LIBRARY_PATH",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ContainerEnvironment:
    """One container, started on the first invoke and reused for the next ones."""

    def __init__(self, function: Function, layout: Layout, env: dict[str, str], timeout_s: float) -> None:
        self.function = function
        self.layout = layout
        self.env = env
        self.timeout_s = timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0

    def _start(self) -> None:
        self._port = _free_port()
        command = docker_command(self.function, self.layout, self.env, self._port)
        self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(),
                                         stderr=subprocess.PIPE)

    def invoke(self, payload: bytes) -> Invocation:
        cold = self._process is None
        if cold:
            self._start()
        assert self._process is not None
        started = time.perf_counter()
        deadline = started + STARTUP_TIMEOUT_S + self.timeout_s
        while True:
            if self._process.poll() is not None:
                detail = (self._process.stderr.read() if self._process.stderr else b"").decode().strip()
                self._process = None
                raise InvokeError(f"docker run failed for {self.function.id}: {detail[-400:] or 'no output'}")
            request = urllib.request.Request(f"http://127.0.0.1:{self._port}{INVOKE_PATH}", data=payload)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s + 5) as response:
                    body = response.read()
                break
            except (urllib.error.URLError, ConnectionError):
                if time.perf_counter() > deadline:
                    self.close()
                    raise InvokeError(f"the container for {self.function.id} did not answer in time") from None
                time.sleep(0.1)
        duration = (time.perf_counter() - started) * 1000
        try:
            parsed = json.loads(body)
        except json.JSONDecodeError:
            parsed = None
        ok = not (isinstance(parsed, dict) and {"errorType", "errorMessage"} <= parsed.keys())
        return Invocation("", ok, body, duration, None, 0)

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait()
        self._process = None
