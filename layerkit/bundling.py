"""How a construct's code asset is produced: which builder, and the code each builder gives the CDK.

``local``: the Docker-free build (:mod:`layerkit.build`), a zip registered under the folder's fingerprint.

``docker``: the CDK's own ``PythonLayerVersion`` / ``PythonFunction`` bundles the folder on the Lambda build
image (:mod:`layerkit.docker_build`). The CDK mixes the bundling image and command into a bundled asset's hash
and registers the asset as it builds it, so the alpha construct is built in a scratch stack that is removed from
the app once the bundle exists; the bundle is then registered once, under the same fingerprint the local build
uses. Switching between a machine with Docker and one without never creates a new layer version or code asset,
and ``cdk deploy`` uploads the bundle once.

``auto``: one of the two for the whole app, Docker only where it can make every target (:mod:`layerkit.choice`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, DockerImage, IStableStringProducer, Lazy, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_python_alpha as python_alpha
from constructs import Construct

from layerkit import choice, engine, uv
from layerkit.build import Build, build_source, layers_provide, report_to_stderr
from layerkit.cache import resolve_cache_dir
from layerkit.choice import BUILDER_CONTEXT_KEY
from layerkit.docker import stage
from layerkit.errors import LayerkitError
from layerkit.slim import Slim
from layerkit.sources import SourceFolder
from layerkit.targets import Target

BYTECODE_CONTEXT_KEY = "layerkit:bytecode"
NETWORK_CONTEXT_KEY = "layerkit:docker-network"


class Builder(StrEnum):
    """Who builds the code: ``docker`` (the CDK's bundling in the Lambda build image) or ``local``."""

    AUTO = "auto"
    DOCKER = "docker"
    LOCAL = "local"


def requested_builder(scope: Construct, explicit: Builder | str | None) -> Builder:
    """The builder asked for: the explicit choice, else the ``layerkit:builder`` context key, else ``auto``."""
    asked = explicit or scope.node.try_get_context(BUILDER_CONTEXT_KEY) or Builder.AUTO
    try:
        return Builder(asked)
    except ValueError:
        raise LayerkitError(
            f"{scope.node.path}: unknown builder {asked!r}; use one of {', '.join(b.value for b in Builder)} "
            f"(argument builder= or -c {BUILDER_CONTEXT_KEY}=...)"
        ) from None


def resolve_builder(scope: Construct, explicit: Builder | str | None, target: Target | None,
                    network: str | None = None, *, what: str = "") -> Builder:
    """``docker`` or ``local``: the one asked for, or for ``auto`` the app's one builder (:mod:`layerkit.choice`).
    ``target`` None: a construct of several targets (``what``), which only the local build makes."""
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


@dataclass(frozen=True)
class DockerOptions:
    """How the Docker builder runs: the image folder (a Dockerfile taking the build arg ``IMAGE``) and the
    network of the image build and of the bundling container; and what a construct of the alpha's API gives the
    container beside (:mod:`layerkit.alpha`): its own image, command hooks (run around the kit's), build
    arguments, environment, and the other ``DockerRunOptions``."""

    image_dir: str | Path | None = None
    network: str | None = None
    image: DockerImage | None = None
    hooks: python_alpha.ICommandHooks | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    run_options: dict[str, Any] = field(default_factory=dict)
    #: The alpha option that needs the container (``bundling.image``...), when one does: a fix that builds without
    #: Docker must then say to drop it.
    required_by: str | None = None
    #: ``layerkit build --builder docker`` runs it: its fixes are that command's options, not a construct's.
    on_command_line: bool = False

    def without_docker(self) -> str:
        """How the user builds without Docker, where they asked for Docker."""
        if self.required_by:
            return f"drop bundling.{self.required_by} to build without Docker"
        if self.on_command_line:
            return "build without Docker (--builder local)"
        return "build without Docker (builder='local', or cdk synth -c layerkit:builder=local)"

    def host_network(self) -> str:
        """How the user gives the bundling container the host's network."""
        if self.on_command_line:
            return "--docker-network host"
        return "docker_network='host' (or cdk synth -c layerkit:docker-network=host)"


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
        import shutil
        import zipfile

        fresh = self.content.with_name(self.content.name + ".local")
        shutil.rmtree(fresh, ignore_errors=True)
        with zipfile.ZipFile(build.zip) as archive:
            for member in archive.infolist():
                path = fresh / member.filename
                if member.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(archive.read(member))
                if mode := (member.external_attr >> 16) & 0o777:
                    path.chmod(mode)
        shutil.rmtree(self.content)
        fresh.rename(self.content)
        self.builder, self.build, self.bundled_by = Builder.LOCAL, build, None


def code_asset(scope: Construct, scratch_id: str, source: SourceFolder, target: Target, *,
               builder: Builder | str | None, bytecode: bool, docker: DockerOptions, runtime: lambda_.Runtime,
               architecture: lambda_.Architecture, provided: dict[str, str] | None = None,
               index: str = "index.py", handler: str = "handler", slim: Slim | None = None,
               options: tuple[str, ...] = (), asset_hash: str | None = None) -> CodeAsset:
    """The code of a layer (``source.destination`` is LAYER) or function, built by ``builder`` as asked (an
    explicit ``docker`` or ``local``; ``auto`` or None: the app's one builder).

    ``scope`` hosts the Docker builder's scratch stack (``scratch_id``) while it bundles. ``options`` are parts of
    the fingerprint beside the kit's own (what else decides the content); ``asset_hash``, given, is the hash the
    code is registered under instead of the kit's (the alpha's ``BundlingOptions.asset_hash``).
    """
    slim = slim or Slim()
    provided = layers_provide(source, target, provided, cache_dir=resolve_cache_dir(), report=report_to_stderr)
    auto = requested_builder(scope, builder) is Builder.AUTO
    chosen = resolve_builder(scope, builder, target, docker.network)

    def local_build() -> Build:
        with uv.environment_overlay({**_build_arg_environment(docker.build_args), **docker.environment}):
            return build_source(source, target, cache_dir=resolve_cache_dir(), bytecode=bytecode, provided=provided,
                                slim=slim, options=options)

    if chosen is not Builder.DOCKER:
        build = local_build()
        registered = asset_hash or build.asset_hash
        return CodeAsset(_registered(build.zip, registered), registered, chosen, build.zip, build=build)
    from layerkit.docker_build import bundle

    fingerprint = source.fingerprint(target, bytecode=bytecode, provided=provided, options=(*slim.options(), *options))
    registered = asset_hash or fingerprint
    staged = stage(source, fingerprint, resolve_cache_dir())
    if not Stack.of(scope).bundling_required:  # not a stack this synth deploys: the CDK stages the source too
        return CodeAsset(_registered(staged, registered), registered, chosen, staged)
    # Present: bundled already into this cloud assembly (by an earlier synth, or a construct of the same inputs),
    # as the CDK skips a bundle it has.
    staged_bundle = Path(Stage.of(scope).outdir) / _staged_name(registered)
    alpha = None
    if not staged_bundle.is_dir():
        bundle_dir, alpha = bundle(scope, scratch_id, source, target, staged, fingerprint, bytecode=bytecode,
                                   docker=docker, network=resolve_network(scope, docker.network), runtime=runtime,
                                   architecture=architecture, provided=tuple(sorted(provided)), index=index,
                                   handler=handler, slim=slim, cache_dir=resolve_cache_dir())
        if bundle_dir != staged_bundle:
            bundle_dir.rename(staged_bundle)  # moved, not copied: the CDK would copy the whole bundle
    asset = CodeAsset(_registered(staged_bundle, registered), registered, chosen, staged_bundle, bundled_by=alpha)
    if auto:
        choice.bundled_in_docker(scope, lambda: asset.replace_with(local_build()))
    return asset


#: The build arguments of the alpha's image that a local build honours, as its environment.
_BUILD_ARG_ENVIRONMENT = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")


def _build_arg_environment(build_args: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in build_args.items() if name in _BUILD_ARG_ENVIRONMENT}


def _staged_name(asset_hash: str) -> str:
    """The folder name the CDK stages a folder named so under (``asset.<sha256 of the custom hash><extension of
    the folder's name>``): the bundle, moved there, is registered without the CDK copying it."""
    import hashlib

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
