"""The Docker builder: the CDK's own ``PythonLayerVersion`` / ``PythonFunction`` bundles the staged folder
(:func:`layerkit.docker.staging.stage`) on the runtime's Lambda build image, and the kit's hooks make the bundle what
the local build makes.

What the hooks do in the container, after the alpha has copied the staged folder:

- install the staged requirements (``_layerkit/requirements.txt``) with the image's own fast installer where
  it has one (``uv``: PythonLayerVersion's image ships it), else pip, from a download cache that outlives the
  container: one folder per build image in the kit's cache, mounted at :data:`DOWNLOAD_CACHE`, never inside the
  asset. A warm image then installs from that cache as the local build installs from uv's;
- drop the dependency files, ``bin/`` (scripts whose shebang is the image's Python), the installer's
  bookkeeping, the distributions the layers provide or ``slim`` leaves out, and slim the rest as the local build
  does (the kit's own :mod:`layerkit.installed.slim`, staged in ``_layerkit/``, run by the image's Python);
- with ``bytecode``, compile ``.pyc`` that Lambda uses as they are, with the image's Python.

A bundling that fails is one line: the container's first error, and the fix it points to (the network, the
platform, the image); the whole output is kept in a log file the message names, and passed through as it comes
with ``cdk --debug`` (``CDK_DEBUG``) or ``LAYERKIT_DEBUG=1``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, DockerImage, DockerVolume, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_python_alpha as python_alpha
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from layerkit.core import progress, uv
from layerkit.core.cache import resolve_cache_dir
from layerkit.core.errors import BuildError, LayerkitError, debugging, redact
from layerkit.core.targets import Destination, Target
from layerkit.docker.options import DockerOptions
from layerkit.docker.staging import EXTRAS, STAGED_REQUIREMENTS, alpha_image_dir, bundling_environment
from layerkit.install import bytecode as pyc
from layerkit.installed.distributions import BOOKKEEPING, SCRIPTS
from layerkit.installed.slim import Slim
from layerkit.sources import DEPENDENCY_FILES, SourceFolder

#: Where the download cache is mounted in the bundling container.
DOWNLOAD_CACHE = "/tmp/layerkit-downloads"
#: Where the distributions the package cache already holds are mounted, installed (copied from, never written).
CACHED_PACKAGES = "/tmp/layerkit-packages"
BUNDLING_STACKS = "aws:cdk:bundling-stacks"


class DockerBuildError(BuildError):
    """The bundling container failed: its first error line and the fix."""


def install_command(output_dir: str, target: Target) -> str:
    """Install the staged requirements into ``output_dir``: the image's uv where it is the uv the local build runs
    (the same installer, the same bytes; choosing wheels for the target's platform, as the local build does,
    whatever libc the image reports), beside the distributions the package cache holds (:data:`CACHED_PACKAGES`,
    already installed: uv installs only the rest), else the image's pip. Run in ``_layerkit/``, so that the relative
    paths in the file mean the same to both."""
    requirements = STAGED_REQUIREMENTS.name
    return (f"if [ -f {output_dir}/{EXTRAS}/{requirements} ]; then cd {output_dir}/{EXTRAS} && "
            f"if [ \"$(uv --version 2>/dev/null | cut -d' ' -f2)\" = {uv.version()} ]; then "
            f"if [ -d {CACHED_PACKAGES} ]; then cp -R {CACHED_PACKAGES}/. {output_dir}/; fi && "
            f"uv pip install --quiet --no-config --link-mode copy "
            f"--python \"$(command -v python)\" --python-platform {target.uv_platform} --target {output_dir} "
            f"-r {requirements}; "
            f"else python -m pip install --quiet --no-compile -r {requirements} -t {output_dir}; fi && "
            f"cd {output_dir}; fi")


@jsii.implements(python_alpha.ICommandHooks)
class FinishBundle:
    """The kit's commands around the alpha's bundling (see the module)."""

    def __init__(self, target: Target, destination: Destination, bytecode: bool, provided: tuple[str, ...] = (),
                 slim: Slim | None = None) -> None:
        self.target = target
        self.destination = destination
        self.bytecode = bytecode
        self.provided = provided
        self.slim = slim or Slim()

    def before_bundling(self, input_dir: str, output_dir: str) -> list[str]:
        return []

    def install(self, output_dir: str) -> list[str]:
        return [install_command(output_dir, self.target)]

    def finish(self, input_dir: str, output_dir: str) -> list[str]:
        dropped = " ".join(f"{output_dir}/{name}" for name in sorted({*DEPENDENCY_FILES, EXTRAS, SCRIPTS, ".lock"}))
        bookkeeping = " ".join(f"{output_dir}/*.dist-info/{name}" for name in BOOKKEEPING)
        records = " ".join([*(f"-e '/[.]dist-info[/]{re.escape(name)},/d'" for name in BOOKKEEPING),
                            f"-e '/^{SCRIPTS}[/]/d'"])  # the scripts' lines, as the local build drops them
        commands = [
            f"rm -rf {dropped}",
            f"rm -f {bookkeeping}",
            f"(sed -i {records} {output_dir}/*.dist-info/RECORD 2>/dev/null || true)",
        ]
        removed = sorted({*self.provided, *self.slim.without})
        if removed or self.slim.changes_files:
            arguments = [*self.slim.arguments(), *(f"--remove {name}" for name in removed)]
            commands.append(f"PYTHONDONTWRITEBYTECODE=1 PYTHONPATH={input_dir}/{EXTRAS} "
                            f"python -m layerkit.installed.slim {output_dir} {' '.join(arguments)}")
        if self.bytecode:
            commands.append(
                f"(find {output_dir} -name __pycache__ -type d -prune -exec rm -rf {{}} + ; "
                f"{pyc.compileall_command('python', output_dir, self.destination.value)} || true)"
            )
        return commands

    def after_bundling(self, input_dir: str, output_dir: str) -> list[str]:
        return [*self.install(output_dir), *self.finish(input_dir, output_dir)]


@jsii.implements(python_alpha.ICommandHooks)
class _Hooks:
    """A construct's own command hooks around the kit's, in the alpha's order: its ``before``; the install (where
    the alpha installs); its ``after``; then the kit's finishing of the bundle."""

    def __init__(self, user: python_alpha.ICommandHooks, kit: FinishBundle) -> None:
        self.user, self.kit = user, kit

    def before_bundling(self, input_dir: str, output_dir: str) -> list[str]:
        return [*self.user.before_bundling(input_dir, output_dir), *self.kit.before_bundling(input_dir, output_dir)]

    def after_bundling(self, input_dir: str, output_dir: str) -> list[str]:
        return [*self.kit.install(output_dir), *self.user.after_bundling(input_dir, output_dir),
                *self.kit.finish(input_dir, output_dir)]


def download_cache(cache_dir: Path, target: Target, image: str) -> Path:
    """The download cache of one build image (its name, or the folder it is built from) for one platform."""
    key = hashlib.sha256(f"{image}\0{target.docker_platform}".encode()).hexdigest()[:16]
    folder = cache_dir / "docker-downloads" / f"{target.runtime}-{target.architecture}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class BundleJob:
    """One bundle to make: the folder as staged (:mod:`.staging`) and everything that decides the bundle's bytes,
    in one object from the construct to the container."""

    source: SourceFolder
    target: Target
    staged: Path
    fingerprint: str  # the asset hash the local build gives the same inputs
    bytecode: bool
    slim: Slim
    docker: DockerOptions
    network: str | None
    cache_dir: Path
    provided: tuple[str, ...] = ()  # distributions the function's layers ship: removed from the bundle
    index: str = "index.py"  # a function's handler module and name (the alpha's PythonFunction wants them)
    handler: str = "handler"
    cached: Path | None = None  # the distributions the package cache holds, installed (staging.cached_packages)


def bundle(scope: Construct, scratch_id: str, job: BundleJob, *, runtime: lambda_.Runtime,
           architecture: lambda_.Architecture) -> tuple[Path, Construct]:
    """Bundle ``job.staged`` with the alpha construct in scratch stack ``scratch_id`` (removed from ``scope`` once
    the bundle exists, its asset registration with it); returns the bundle folder and the alpha construct."""
    source, target, docker, network = job.source, job.target, job.docker, job.network
    finish = FinishBundle(target, source.destination, job.bytecode, job.provided, job.slim)
    image_key = str(docker.image_dir or (docker.image.image if docker.image else "alpha"))
    downloads = download_cache(job.cache_dir, target, f"{target.bundling_image}\0{image_key}")
    run_options = dict(docker.run_options)
    volumes = [*(run_options.pop("volumes", None) or ()),
               DockerVolume(host_path=str(downloads), container_path=DOWNLOAD_CACHE),
               *([DockerVolume(host_path=str(job.cached), container_path=CACHED_PACKAGES)]
                 if job.cached is not None else [])]
    environment = {  # the index settings last: the construct's own environment names them as the local build reads
        "UV_CACHE_DIR": f"{DOWNLOAD_CACHE}/uv", "PIP_CACHE_DIR": f"{DOWNLOAD_CACHE}/pip", "UV_LINK_MODE": "copy",
        "UV_NO_PROGRESS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        **docker.environment,
        **bundling_environment(source, docker.environment),
    }
    scratch = Stack(scope, scratch_id)
    scratch.node.set_context(BUNDLING_STACKS, ["**"])  # bundle exactly when the real stack does (checked by caller)
    log = job.cache_dir / "logs" / f"docker-{job.fingerprint[:16]}.log"
    alpha: Construct
    with _container_output(log) as failed, progress.step(
            f"{source.what}: bundling in Docker on {target.bundling_image} ({target.docker_platform}), its output in "
            f"{log}"):
        try:
            bundling = python_alpha.BundlingOptions(  # the image is built here: its output is the container tool's
                asset_hash=job.fingerprint, asset_hash_type=AssetHashType.CUSTOM, network=network,
                image=docker.image or _image(docker.image_dir, target, network, docker.build_args),
                command_hooks=_Hooks(docker.hooks, finish) if docker.hooks is not None else finish,
                environment=environment, volumes=volumes, **run_options,
            )
            if source.destination is Destination.LAYER:
                alpha = python_alpha.PythonLayerVersion(scratch, "Layer", entry=str(job.staged),
                                                        compatible_runtimes=[runtime],
                                                        compatible_architectures=[architecture], bundling=bundling)
            else:
                alpha = python_alpha.PythonFunction(scratch, "Function", entry=str(job.staged), index=job.index,
                                                    handler=job.handler, runtime=runtime, architecture=architecture,
                                                    bundling=bundling)
        except (jsii.errors.JSIIError, RuntimeError) as error:  # jsii raises a RuntimeError for the CDK's
            scope.node.try_remove_child(scratch_id)
            raise failed(source.what, target, network, error, docker) from None
    code = alpha.node.try_find_child("Code")
    if not isinstance(code, s3_assets.Asset):
        raise LayerkitError(f"{scope.node.path}: the bundled code of {type(alpha).__name__} was not found; this "
                            "version of aws-lambda-python-alpha is not supported by layerkit")
    scope.node.try_remove_child(scratch_id)

    return Path(Stage.of(scope).outdir) / code.asset_path, alpha


def _image(image_dir: str | Path | None, target: Target, network: str | None,
           build_args: dict[str, str] | None = None) -> DockerImage:
    """The bundling image: the given folder's Dockerfile, else PythonLayerVersion's own, built by the kit with
    the network the build uses and the uv the local build runs (``UV_VERSION``: the alpha's Dockerfile takes it
    as a build argument and would install an older one)."""
    arguments = {**(build_args or {}), "IMAGE": target.bundling_image}
    if image_dir is None:
        arguments.setdefault("UV_VERSION", uv.version())
    folder = Path(image_dir).resolve() if image_dir is not None else alpha_image_dir(resolve_cache_dir())
    return DockerImage.from_build(str(folder), build_args=arguments, platform=target.docker_platform,
                                  network=network)


class _Captured(io.TextIOBase):
    """``sys.stderr`` while the alpha bundles: the jsii kernel writes the container's output through it."""

    def __init__(self, log: io.BufferedWriter, echo: Any | None) -> None:
        self.log, self.echo = log, echo
        self.buffer = self  # jsii writes bytes to sys.stderr.buffer
        self.written = time.monotonic()

    def write(self, data: Any) -> int:
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
        self.log.write(raw)
        self.written = time.monotonic()
        if self.echo is not None:
            self.echo.write(raw.decode("utf-8", "replace"))
        return len(data)

    def flush(self) -> None:
        self.log.flush()


@contextlib.contextmanager
def _container_output(log_path: Path) -> Iterator[Any]:
    """Keep what the container and the CDK print while bundling in ``log_path``; yields the function that turns
    a failure into one line."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        captured = _Captured(log, sys.stderr if debugging() else None)

        def failed(what: str, target: Target, network: str | None, error: Exception,
                   docker: DockerOptions) -> DockerBuildError:
            deadline = time.monotonic() + 2.0  # the kernel's stderr arrives on its own pipe, maybe after the error
            while time.monotonic() < deadline and time.monotonic() - captured.written < 0.3:
                time.sleep(0.05)
            log.write(f"\n{error}\n".encode())
            log.flush()
            output = log_path.read_text(encoding="utf-8", errors="replace")
            line = first_error(output) or first_error(str(error)) or str(error).splitlines()[0]
            return DockerBuildError(f"{what}: the Docker build for {target.runtime} on {target.architecture} failed: "
                                    f"{line}; "
                                    f"{fix_for(output, network, target, docker)} (the whole output: {log_path})")

        saved = sys.stderr
        sys.stderr = captured  # type: ignore[assignment]
        try:
            yield failed
        finally:
            sys.stderr = saved


_ERROR = re.compile(r"^(?:ERROR:|error:|Error:|docker: Error|E: |.*Error response from daemon:)", re.IGNORECASE)
_NOISE = ("ERROR: pip's dependency resolver", "error: subprocess-exited-with-error")


def first_error(output: str) -> str | None:
    """The first line of ``output`` that says what failed, with uv's deepest cause beside it."""
    lines = [line.strip() for line in output.splitlines()]
    for number, line in enumerate(lines):
        if _ERROR.match(line) and not line.startswith(_NOISE):
            causes = []
            for following in lines[number + 1:number + 12]:
                if following.startswith(("Caused by:", "cause:")):
                    causes.append(following.split(":", 1)[1].strip())
                elif following and not following.startswith(" ") and causes:
                    break
            if causes and line.rstrip().endswith(":"):
                line = f"{line} {causes[-1]}"
            elif causes:
                line = f"{line} ({causes[-1]})"
            return redact(line[:400])
    return None


def fix_for(output: str, network: str | None, target: Target, docker: DockerOptions) -> str:
    """The fix the container's output points to, written as the user can type it where they asked for Docker."""
    lowered = output.lower()
    if "exec format error" in lowered:
        return f"the engine cannot run {target.docker_platform}: install QEMU emulation, or {docker.without_docker()}"
    if any(s in lowered for s in ("name resolution", "name or service not known", "network is unreachable",
                                  "failed to establish a new connection", "dns error", "connection refused")):
        if network != "host":
            return f"the container has no network to the package index: set {docker.host_network()}"
        return "the container cannot reach the package index: check PIP_INDEX_URL and the host's network"
    if "pull access denied" in lowered or "manifest unknown" in lowered or "no such host" in lowered:
        return (f"the build image cannot be pulled: pull it (docker pull --platform {target.docker_platform} "
                f"{target.bundling_image}), or {docker.without_docker()}")
    if "no matching distribution" in lowered or "could not find a version" in lowered or "no solution" in lowered:
        return "a requirement is not on the index for this runtime: check its name and version"
    return f"fix what the line says, or {docker.without_docker()}"
