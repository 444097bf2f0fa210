"""How a construct's code asset is produced: which builder, and the code each builder gives the CDK.

``local``: the Docker-free build (:mod:`layerkit.assemble.local_build`), a zip registered under the folder's
fingerprint.

``docker``: the CDK's own ``PythonLayerVersion`` / ``PythonFunction`` bundles the folder on the Lambda build
image (:mod:`layerkit.docker.bundle`). The CDK mixes the bundling image and command into a bundled asset's hash
and registers the asset as it builds it, so the alpha construct is built in a scratch stack that is removed from
the app once the bundle exists; the bundle is then registered once, under the same fingerprint the local build
uses. Switching between a machine with Docker and one without never creates a new layer version or code asset,
and ``cdk deploy`` uploads the bundle once.

``auto``: one of the two for the whole app, Docker only where it can make every target
(:mod:`layerkit.constructs.builder_choice`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import jsii
from aws_cdk import App, AssetHashType, IStableStringProducer, Lazy, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layerkit.assemble.build_result import Build
from layerkit.assemble.local_build import asset_hash_of, build_source, layers_provide, report_to_stderr
from layerkit.assemble.matrix import build_variants
from layerkit.constructs import builder_choice as choice
from layerkit.constructs.builder_choice import BUILDER_CONTEXT_KEY
from layerkit.constructs.mistakes import AlreadyTold
from layerkit.core import progress, uv
from layerkit.core.archive import asset_sizes, compress_files, write_zip
from layerkit.core.cache import resolve_cache_dir
from layerkit.core.choices import one_of
from layerkit.core.errors import LayerkitError
from layerkit.core.extraction import extract_zip
from layerkit.core.targets import Destination, Target, Variant, lambda_architecture, python_runtime
from layerkit.docker import engine
from layerkit.docker.bundle import BundleJob, bundle
from layerkit.docker.options import DockerOptions
from layerkit.docker.staging import cached_packages, stage
from layerkit.installed.distributions import distributions_in
from layerkit.installed.slim import Slim
from layerkit.sharing.layer_versions import BuiltVersion
from layerkit.sources import SourceFolder

BYTECODE_CONTEXT_KEY = "layerkit:bytecode"
NETWORK_CONTEXT_KEY = "layerkit:docker-network"


class Builder(StrEnum):
    """Who builds the code: ``docker`` (the CDK's bundling in the Lambda build image) or ``local``."""

    AUTO = "auto"
    DOCKER = "docker"
    LOCAL = "local"


def requested_builder(scope: Construct, explicit: Builder | str | None) -> Builder:
    """The builder asked for: the explicit choice, else the ``layerkit:builder`` context key, else ``auto``."""
    return one_of(Builder, explicit or scope.node.try_get_context(BUILDER_CONTEXT_KEY) or Builder.AUTO,
                  where=scope.node.path, argument="builder", context_key=BUILDER_CONTEXT_KEY)


def resolve_builder(scope: Construct, explicit: Builder | str | None, target: Target | None,
                    network: str | None = None, *, what: str = "") -> Builder:
    """``docker`` or ``local``: the one asked for, or for ``auto`` the app's one builder
    (:mod:`layerkit.constructs.builder_choice`). ``target`` None: a construct of several targets (``what``),
    which only the local build makes."""
    builder = requested_builder(scope, explicit)
    if builder is not Builder.AUTO:
        return builder
    docker = choice.docker_for(scope, target, lambda: resolve_network(scope, network), what=what)
    return Builder.DOCKER if docker else Builder.LOCAL


def resolve_bytecode(scope: Construct, explicit: bool | None) -> bool:
    """The explicit choice, else the ``layerkit:bytecode`` context key, else ``True``."""
    if explicit is not None:
        return explicit
    return str(scope.node.try_get_context(BYTECODE_CONTEXT_KEY) or "true").lower() not in ("false", "0")


def resolve_network(scope: Construct, explicit: str | None) -> str | None:
    """The explicit network, else the ``layerkit:docker-network`` context key, else ``host`` where the engine has
    no bridge network (a container on its default network has none), else Docker's default."""
    return engine.build_network(explicit or scope.node.try_get_context(NETWORK_CONTEXT_KEY) or None)


@dataclass
class CodeAsset:
    """A construct's code, and how it was made."""

    code: lambda_.Code
    asset_hash: str
    builder: Builder
    content: Path  # the zip or folder that is uploaded
    build: Build | None = None  # the local build
    bundled_by: Construct | None = None  # the alpha construct that bundled it (in its removed scratch stack)

    def replace_with(self, build: Build) -> None:
        """Make this Docker bundle the local ``build`` of the same inputs, in place: the folder the CDK registered
        gets the build's files, under the same asset hash (``auto`` turning the app local)."""
        fresh = self.content.with_name(self.content.name + ".local")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir()
        extract_zip(build.zip, fresh, f"the local build of {build.name}", into="the asset's folder")
        shutil.rmtree(self.content)
        fresh.rename(self.content)
        self.builder, self.build, self.bundled_by = Builder.LOCAL, build, None


@dataclass(frozen=True)
class CodeOptions:
    """How a construct's code is built, beside its folder and its target: one object from the construct to the
    builders (the alpha's ``bundling`` maps onto it: :mod:`layerkit.constructs.alpha`)."""

    #: ``docker``, ``local``, or ``auto``/None: the app's one builder (:mod:`layerkit.constructs.builder_choice`).
    builder: Builder | str | None = None
    #: Ship ``.pyc`` compiled for the runtime (the construct resolves its context key first: :func:`resolve_bytecode`).
    bytecode: bool = True
    docker: DockerOptions = field(default_factory=DockerOptions)
    slim: Slim = field(default_factory=Slim)
    #: What else decides the content, beside the kit's own inputs (the alpha's container-only options): part of the
    #: asset hash.
    fingerprint: tuple[str, ...] = ()
    #: The hash the code is registered under instead of the kit's (the alpha's ``BundlingOptions.asset_hash``).
    asset_hash: str | None = None


def code_asset(scope: Construct, scratch_id: str, source: SourceFolder, target: Target, how: CodeOptions, *,
               runtime: lambda_.Runtime, architecture: lambda_.Architecture, provided: dict[str, str] | None = None,
               index: str = "index.py", handler: str = "handler") -> CodeAsset:
    """The code of a layer (``source.destination`` is LAYER) or function, built as ``how`` says (an explicit
    ``docker`` or ``local``; ``auto`` or None: the app's one builder). ``scope`` hosts the Docker builder's scratch
    stack (``scratch_id``) while it bundles."""
    slim, docker, bytecode = how.slim, how.docker, how.bytecode
    provided = layers_provide(source, target, provided, cache_dir=resolve_cache_dir(), report=report_to_stderr)
    auto = requested_builder(scope, how.builder) is Builder.AUTO
    chosen = resolve_builder(scope, how.builder, target, docker.network)

    def local_build() -> Build:
        with uv.environment_overlay({**_build_arg_environment(docker.build_args), **docker.environment}):
            return build_source(source, target, cache_dir=resolve_cache_dir(), bytecode=bytecode, provided=provided,
                                slim=slim, options=how.fingerprint)

    if chosen is not Builder.DOCKER:
        build = local_build()
        registered = how.asset_hash or build.asset_hash
        return CodeAsset(_registered(build.zip, registered), registered, chosen, build.zip, build=build)
    fingerprint = asset_hash_of(source, target, bytecode=bytecode, provided=provided, slim=slim,
                                options=how.fingerprint)
    registered = how.asset_hash or fingerprint
    staged = stage(source, fingerprint, resolve_cache_dir())
    if not Stack.of(scope).bundling_required:  # not a stack this synth deploys: the CDK stages the source too
        return CodeAsset(_registered(staged, registered), registered, chosen, staged)
    # Present: bundled already into this cloud assembly (by an earlier synth, or a construct of the same inputs),
    # as the CDK skips a bundle it has.
    staged_bundle = Path(Stage.of(scope).outdir) / _staged_name(registered)
    alpha = None
    if not staged_bundle.is_dir() and docker.image is None:
        _refuse_missing_image(scope, source.what, target, docker)
    if not staged_bundle.is_dir():
        terminal = sys.stderr  # bound now: the bundling keeps what is written to sys.stderr in its log

        def report(line: str) -> None:
            print(f"layerkit: {line}", file=terminal, flush=True)

        cached = cached_packages(source, target, slim, resolve_cache_dir())
        if cached is not None:
            report(f"{source.what}: {', '.join(cached[1])} from the package cache, installed in the build container "
                   "beside the rest")
        job = BundleJob(source, target, staged, fingerprint, bytecode, slim, docker,
                        resolve_network(scope, docker.network), resolve_cache_dir(), tuple(sorted(provided)), index,
                        handler, cached=cached[0] if cached is not None else None)

        with progress.reporting(report):
            bundle_dir, alpha = bundle(scope, scratch_id, job, runtime=runtime, architecture=architecture)
        if bundle_dir != staged_bundle:
            bundle_dir.rename(staged_bundle)  # moved, not copied: the CDK would copy the whole bundle
    asset = CodeAsset(_registered(staged_bundle, registered), registered, chosen, staged_bundle, bundled_by=alpha)
    if auto:
        choice.bundled_in_docker(scope, lambda: asset.replace_with(local_build()))
    return asset


def _refuse_missing_image(scope: Construct, what: str, target: Target, docker: DockerOptions) -> None:
    """Docker asked for, and the build image cannot be had: said once per app, on the first construct that needs
    it (the others are broken without a word: :class:`~layerkit.constructs.mistakes.AlreadyTold`)."""
    image, platform = target.bundling_image, target.docker_platform
    why = engine.image_unavailable(image, platform)
    if why is None:
        return
    if not choice.first_to_need(scope, (image, platform)):
        raise AlreadyTold(image)
    raise LayerkitError(f"{what}: Docker was asked for, and {image} for {platform} is not in the Docker engine and "
                        f"cannot be pulled ({why}): pull it (docker pull --platform {platform} {image}), or "
                        f"{docker.without_docker()}; every construct that needs it waits on it")


#: The build arguments of the alpha's image that a local build honours, as its environment.
_BUILD_ARG_ENVIRONMENT = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")


def layer_code(scope: Construct, scratch_id: str, source: SourceFolder, targets: list[Target], how: CodeOptions, *,
               what: str, several_need_local: str) -> tuple[list[BuiltVersion], CodeAsset | None]:
    """The code of each version a layer of ``targets`` publishes, as :func:`code_asset` builds one target, or the
    matrix build several (:mod:`layerkit.assemble.matrix`, built locally: ``several_need_local`` is the fix when
    Docker is asked for); the code asset of a layer of one target."""
    if len(targets) == 1:
        target = targets[0]
        code = code_asset(scope, scratch_id, source, target, how, runtime=python_runtime(target.runtime),
                          architecture=lambda_architecture(target.architecture))
        packages = {runtime: versions_of(pins) for runtime, pins in code.build.packages_by_runtime.items()} \
            if code.build is not None else {target.runtime: distributions_in(asset_sizes(code.content), in_layer=True)}
        return [BuiltVersion(Variant((target.architecture,), (target.runtime,)), code.code, code.asset_hash,
                             code.content, packages)], code
    if requested_builder(scope, how.builder) is Builder.DOCKER:
        raise LayerkitError(f"{what}: a layer for several runtimes or architectures is built without Docker (the kit "
                            "merges one build per target, which the Lambda build images cannot make for another "
                            f"machine); {several_need_local}")
    resolve_builder(scope, how.builder, None, what=what)  # auto: the app builds locally
    builds = build_variants(source, [t.runtime for t in targets], [t.architecture for t in targets],
                            cache_dir=resolve_cache_dir(), report=report_to_stderr, bytecode=how.bytecode,
                            slim=how.slim)
    return [BuiltVersion(build.variant, _registered(build.zip, build.asset_hash), build.asset_hash, build.zip,
                         {runtime: versions_of(pins) for runtime, pins in build.packages_by_runtime.items()})
            for build in builds], None


def versions_of(pins: list[str]) -> dict[str, str]:
    """``["six==1.17.0"]`` as ``{"six": "1.17.0"}``."""
    return dict(pin.split("==", 1) for pin in pins)


def _build_arg_environment(build_args: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in build_args.items() if name in _BUILD_ARG_ENVIRONMENT}


def _staged_name(asset_hash: str) -> str:
    """The folder name the CDK stages a folder named so under (``asset.<sha256 of the custom hash><extension of
    the folder's name>``): the bundle, moved there, is registered without the CDK copying it."""
    return f"asset.{hashlib.sha256(asset_hash.encode()).hexdigest()}.{asset_hash}"


def _registered(content: Path, asset_hash: str) -> lambda_.Code:
    """``content`` (a zip, or a folder the CLI zips) as code under the kit's own asset hash."""
    return lambda_.Code.from_asset(str(content), asset_hash=asset_hash, asset_hash_type=AssetHashType.CUSTOM)


@jsii.implements(IStableStringProducer)
class _BuilderName:
    def __init__(self, asset: Callable[[], CodeAsset | None]) -> None:
        self.asset = asset

    def produce(self) -> str:
        return builder_of(self.asset()).value


def builder_of(asset: CodeAsset | None) -> Builder:
    """The builder that made ``asset`` (None: a construct of several targets, built locally)."""
    return asset.builder if asset is not None else Builder.LOCAL


def builder_metadata(asset: Callable[[], CodeAsset | None]) -> str:
    """The builder of a construct's code as its metadata says it: resolved at synth, once ``auto`` is final."""
    return Lazy.string(_BuilderName(asset))


def build_in_docker(source: SourceFolder, target: Target, *, bytecode: bool, slim: Slim, network: str | None,
                    cache_dir: Path | None) -> Build:
    """``layerkit build --builder docker``: the constructs' Docker builder, in an app of its own, and its bundle
    zipped as the local build zips a tree (sorted, fixed dates), under the same asset hash."""
    started = time.perf_counter()
    if cache_dir is not None:
        os.environ["LAYERKIT_CACHE_DIR"] = str(cache_dir)  # the builder reads the cache from the environment
    root = resolve_cache_dir(cache_dir)
    # PythonFunction wants a handler module: any of the folder's own (the zip does not depend on which).
    index = next((p.name for p in sorted(source.root.glob("*.py"))), "index.py")
    with tempfile.TemporaryDirectory(prefix="layerkit-docker-build-") as outdir:
        app = App(outdir=outdir)
        how = CodeOptions(Builder.DOCKER, bytecode, DockerOptions(network=network), slim)
        asset = code_asset(Stack(app, "LayerkitBuild"), "Bundle", source, target, how,
                           runtime=python_runtime(target.runtime),
                           architecture=lambda_architecture(target.architecture), index=index)
        files = sorted((p.relative_to(asset.content).as_posix(), p) for p in asset.content.rglob("*") if p.is_file())
        zip_path = root / "docker-builds" / f"{asset.asset_hash}.zip"
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        partial = zip_path.with_name(f".{zip_path.name}.{os.getpid()}.tmp")
        with tempfile.TemporaryDirectory(dir=root) as spill:
            zipped_bytes, sha256 = write_zip(partial, compress_files(files, spill_dir=Path(spill)))
        partial.replace(zip_path)
        sizes = asset_sizes(asset.content)
    layer = source.destination is Destination.LAYER
    packages = distributions_in(sizes, in_layer=layer)
    return Build(name=source.name, kind="layer" if layer else "function", zip=zip_path, sha256=sha256,
                 zipped_bytes=zipped_bytes, unzipped_bytes=sum(sizes.values()), cache="miss",
                 builder=Builder.DOCKER.value, asset_hash=asset.asset_hash, runtime=target.runtime,
                 architecture=target.architecture, platform=target.platform_tag,
                 packages=[f"{name}=={version}" for name, version in sorted(packages.items())], bytecode=bytecode,
                 seconds=round(time.perf_counter() - started, 3))
