"""Invoke a function of a cloud assembly locally: pick a backend, lay the function out, run each event."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from layerkit.assembly import Function
from layerkit.assembly.assets import AssetContent
from layerkit.core import progress
from layerkit.core.errors import InvokeError
from layerkit.core.interpreters import find_python
from layerkit.docker.engine import docker_available, image_present, image_unavailable
from layerkit.invoke.container import ContainerLauncher
from layerkit.invoke.environment import lambda_environment
from layerkit.invoke.execution import ExecutionEnvironment
from layerkit.invoke.layout import prepare_layout, prepare_runtime
from layerkit.invoke.result import Invocation
from layerkit.invoke.sandbox import Network, SandboxLauncher, check_architecture, sandbox_command
from layerkit.rules.findings import Severity
from layerkit.rules.limits import MAX_LAYERS
from layerkit.rules.size import Shares, size_findings

BACKENDS = ("auto", "sandbox", "docker")


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def choose_backend(requested: str, function: Function) -> str:
    """``auto`` on Linux: ``docker`` where the engine has the function's Lambda image already, else the sandbox
    (nothing pulled, nothing said). ``docker``, or ``auto`` where there is no sandbox: the image, pulled if need be,
    or an error naming it and its platform."""
    if requested not in BACKENDS:
        raise InvokeError(f"unknown backend {requested!r}; use one of {', '.join(BACKENDS)}")
    linux = sys.platform.startswith("linux")
    if requested == "sandbox" or (requested == "auto" and linux):
        if requested == "auto" and docker_available() and image_present(function.target.lambda_image,
                                                                          function.target.docker_platform):
            return "docker"  # the Lambda image is in the engine already: auto never pulls, and says nothing
        if linux:
            return "sandbox"
        raise InvokeError("the sandbox backend needs Linux (bubblewrap); use --backend docker")
    if not docker_available():
        if requested == "docker":
            raise InvokeError("no Docker daemon answers; start Docker, or use --backend sandbox on Linux")
        raise InvokeError(
            "no Docker daemon answers, and the sandbox backend needs Linux (bubblewrap); install and start Docker "
            "Desktop (docs.docker.com/get-docker), then invoke again"
        )
    image, platform = function.target.lambda_image, function.target.docker_platform
    if (why := image_unavailable(image, platform)) is None:
        return "docker"
    raise InvokeError(f"the Lambda image {image} for {platform} is not in the Docker engine and cannot be pulled "
                      f"({why}); pull it (docker pull --platform {platform} {image})"
                      f"{' or use --backend sandbox' if linux else ''}")


def check_limits(function: Function) -> None:
    """Lambda refuses to create a function over its limits (5 layers; 250 MB of code and layers unzipped), so a
    local invoke refuses it too, whatever the synth let through."""
    if missing := [use.layer.owned_elsewhere for use in function.layers if use.layer.asset is None]:
        raise InvokeError(f"function {function.id} uses {missing[0]}, a layer owned elsewhere, not given: pass "
                          f"--layers-from the owner app's cdk.out, or --layer {missing[0]}=PATH (a zip or folder)")
    if len(function.layers) > MAX_LAYERS:
        raise InvokeError(f"function {function.id} has {len(function.layers)} layers; Lambda allows "
                          f"{MAX_LAYERS} and would refuse to create it: merge layers")
    code = AssetContent(function.code, f"function {function.id}")
    layers = [AssetContent(use.layer.asset, f"layer {use.layer.id}") for use in function.layers
              if use.layer.asset is not None]
    total = code.unzipped_bytes + sum(layer.unzipped_bytes for layer in layers)
    shares = sum((Shares.of(layer.sizes, in_layer=True) for layer in layers),
                 Shares.of(code.sizes, in_layer=False))
    for finding in size_findings(f"function {function.id}: code plus layers", total, shares):
        if finding.severity is Severity.ERROR:
            raise InvokeError(f"{finding.message} Lambda would refuse to create it, so it is not invoked.")


@contextmanager
def open_environment(
    function: Function,
    *,
    backend: str = "auto",
    env_overrides: dict[str, str] | None = None,
    timeout_s: float | None = None,
    cache_dir: Path | None = None,
    network: Network | str = Network.SANDBOX,
    log: Callable[[str], None] = _to_stderr,
    echo: bool = True,
) -> Iterator[ExecutionEnvironment]:
    """An execution environment for ``function``, reused by every invoke inside the ``with`` block.

    ``network``: the sandbox's (see :class:`~layerkit.invoke.sandbox.Network`); a container always shares the
    host's. ``log`` gets Lambda's log lines, and the function's output when ``echo``.
    """
    timeout = float(timeout_s if timeout_s is not None else function.timeout_s)
    if timeout <= 0:
        raise InvokeError(f"--timeout must be a positive number of seconds, not {timeout}")
    try:
        network = Network(network)
    except ValueError:
        raise InvokeError(f"unknown network {network!r}; use one of {', '.join(n.value for n in Network)}") from None
    check_limits(function)
    chosen = choose_backend(backend, function)
    target = function.target
    with progress.reporting(lambda line: log(f"layerkit: {line}")):
        layout = prepare_layout(function, cache_dir)

    def env_for(api_address: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**lambda_environment(function, api_address, env_overrides or {}), **(extra or {})}

    launcher: ContainerLauncher | SandboxLauncher
    settle_s = 0.0
    if chosen == "docker":
        launcher = ContainerLauncher(function, layout, env_for, network, log)
        settle_s = 0.05  # the container's output comes through the docker client, a moment after its answer
    else:
        check_architecture(function)
        python = find_python(target.python_version)
        with progress.reporting(lambda line: log(f"layerkit: {line}")):
            runtime_dir = prepare_runtime(target, cache_dir)

        def command_for(address: str, extra: dict[str, str], mode: Network, work: Path | None) -> list[str]:
            return sandbox_command(function, layout, runtime_dir, python, env_for(address, extra), network=mode,
                                   work=work, tmp=work / "tmp" if work is not None else None)

        launcher = SandboxLauncher(function, command_for, network, None, log, cache_dir=cache_dir)
    environment = ExecutionEnvironment(function, launcher, timeout, log=log, echo=echo, output_settle_s=settle_s)
    try:
        yield environment
    finally:
        environment.close()


def invoke_function(
    function: Function,
    events: list[bytes],
    *,
    backend: str = "auto",
    env_overrides: dict[str, str] | None = None,
    timeout_s: float | None = None,
    repeat: int = 1,
    cache_dir: Path | None = None,
    network: Network | str = Network.SANDBOX,
    log: Callable[[str], None] = _to_stderr,
    on_result: Callable[[Invocation], None] | None = None,
) -> list[Invocation]:
    """Invoke ``function`` with each event (``repeat`` times), warm after the first, as Lambda reuses an
    execution environment. Lambda's log lines and the function's output go to ``log`` (stderr); ``on_result``
    sees each invocation as soon as it ends."""
    results = []
    with open_environment(function, backend=backend, env_overrides=env_overrides, timeout_s=timeout_s,
                          cache_dir=cache_dir, network=network, log=log) as environment:
        for _ in range(repeat):
            for payload in events:
                result = environment.invoke(payload)
                if on_result:
                    on_result(result)
                results.append(result)
    return results
