"""Invoke a function of a cloud assembly locally: pick a backend, lay the function out, run each event."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from layerkit.assembly import Function
from layerkit.docker import docker_available
from layerkit.errors import InvokeError
from layerkit.interpreters import find_python
from layerkit.invoke.container import ContainerEnvironment, container_environment
from layerkit.invoke.environment import lambda_environment
from layerkit.invoke.layout import prepare_layout, prepare_runtime
from layerkit.invoke.result import Invocation
from layerkit.invoke.sandbox import SandboxEnvironment, check_architecture, sandbox_command

BACKENDS = ("auto", "sandbox", "docker")


class Environment(Protocol):
    def invoke(self, payload: bytes) -> Invocation: ...
    def close(self) -> None: ...


def choose_backend(requested: str) -> str:
    if requested not in BACKENDS:
        raise InvokeError(f"unknown backend {requested!r}; use one of {', '.join(BACKENDS)}")
    if requested == "auto":
        return "docker" if docker_available() else "sandbox"
    return requested


@contextmanager
def open_environment(
    function: Function,
    *,
    backend: str = "auto",
    env_overrides: dict[str, str] | None = None,
    timeout_s: float | None = None,
    cache_dir: Path | None = None,
) -> Iterator[Environment]:
    """An execution environment for ``function``, reused by every invoke inside the ``with`` block."""
    timeout = float(timeout_s if timeout_s is not None else function.timeout_s)
    if timeout <= 0:
        raise InvokeError(f"--timeout must be a positive number of seconds, not {timeout}")
    chosen = choose_backend(backend)
    target = function.target
    layout = prepare_layout(function, cache_dir)
    environment: Environment
    if chosen == "docker":
        env = container_environment(function, lambda_environment(function, "", env_overrides or {}))
        environment = ContainerEnvironment(function, layout, env, timeout)
    else:
        check_architecture(function)
        python = find_python(target.python_version)
        runtime_dir = prepare_runtime(target, cache_dir)

        def command_for(api_address: str) -> list[str]:
            env = lambda_environment(function, api_address, env_overrides or {})
            return sandbox_command(function, layout, runtime_dir, python, env)

        environment = SandboxEnvironment(function, command_for, timeout)
    try:
        yield environment
    finally:
        environment.close()


def report_line(function: Function, result: Invocation) -> str:
    """Lambda's REPORT log line."""
    line = (f"REPORT RequestId: {result.request_id}\tDuration: {result.duration_ms:.2f} ms\t"
            f"Billed Duration: {max(1, round(result.duration_ms + 0.4999))} ms\t"
            f"Memory Size: {function.memory_mb} MB\tMax Memory Used: {result.max_memory_mb} MB")
    if result.init_ms is not None:
        line += f"\tInit Duration: {result.init_ms:.2f} ms"
    return line


def invoke_function(
    function: Function,
    events: list[bytes],
    *,
    backend: str = "auto",
    env_overrides: dict[str, str] | None = None,
    timeout_s: float | None = None,
    repeat: int = 1,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    on_result: Callable[[Invocation], None] | None = None,
) -> list[Invocation]:
    """Invoke ``function`` with each event (``repeat`` times), warm after the first, as Lambda reuses an
    execution environment. Function logs and END/REPORT lines go to ``log``'s stream (stderr);
    ``on_result`` sees each invocation as soon as it ends."""
    results = []
    with open_environment(function, backend=backend, env_overrides=env_overrides, timeout_s=timeout_s,
                          cache_dir=cache_dir) as environment:
        for _ in range(repeat):
            for payload in events:
                result = environment.invoke(payload)
                log(f"END RequestId: {result.request_id}")
                log(report_line(function, result))
                if on_result:
                    on_result(result)
                results.append(result)
    return results
