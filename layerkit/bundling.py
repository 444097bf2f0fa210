"""How a construct's code asset is produced: which builder, and the code each builder gives the CDK.

``local``: the Docker-free build (:mod:`layerkit.build`), a zip registered under the folder's fingerprint.

``docker``: the CDK's own ``PythonLayerVersion`` / ``PythonFunction`` bundles the folder on the Lambda build
image, staged so that it installs what the local build installs (:func:`layerkit.docker.stage`), with a hook
that makes the bundle what the local build makes (no dependency files, no ``bin/``, the kit's ``.pyc``). The
CDK mixes the bundling image and command into a bundled asset's hash and registers the asset as it builds it,
so the alpha construct is built in a scratch stack that is removed from the app once the bundle exists; the
bundle is then registered once, under the same fingerprint the local build uses. Switching between a machine
with Docker and one without never creates a new layer version or code asset, and ``cdk deploy`` uploads the
bundle once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import Annotations, AssetHashType, DockerImage, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_python_alpha as python_alpha
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from layerkit import bytecode as pyc
from layerkit import uv
from layerkit.build import Build, build_source
from layerkit.cache import resolve_cache_dir
from layerkit.docker import EXTRAS, alpha_image_dir, bundling_environment, docker_available, image_unavailable, stage
from layerkit.errors import LayerkitError
from layerkit.installed import BOOKKEEPING
from layerkit.slim import Slim
from layerkit.sources import DEPENDENCY_FILES, SourceFolder
from layerkit.targets import Destination, Target

BUILDER_CONTEXT_KEY = "layerkit:builder"
BYTECODE_CONTEXT_KEY = "layerkit:bytecode"
NETWORK_CONTEXT_KEY = "layerkit:docker-network"
BUNDLING_STACKS = "aws:cdk:bundling-stacks"


class Builder(StrEnum):
    """Who builds the code: ``docker`` (the CDK's bundling in the Lambda build image) or ``local``."""

    AUTO = "auto"
    DOCKER = "docker"
    LOCAL = "local"


def resolve_builder(scope: Construct, explicit: Builder | str | None, target: Target) -> Builder:
    """``docker`` or ``local``: the explicit choice, else the context key, else ``auto``: Docker where a daemon
    answers and has (or can pull) the runtime's build image, else the Docker-free build, with a warning."""
    choice = explicit or scope.node.try_get_context(BUILDER_CONTEXT_KEY) or Builder.AUTO
    try:
        builder = Builder(choice)
    except ValueError:
        raise LayerkitError(
            f"{scope.node.path}: unknown builder {choice!r}; use one of {', '.join(b.value for b in Builder)} "
            f"(argument builder= or -c {BUILDER_CONTEXT_KEY}=...)"
        ) from None
    if builder is not Builder.AUTO:
        return builder
    if not docker_available():
        return Builder.LOCAL
    if why := image_unavailable(target.bundling_image):
        Annotations.of(scope).add_warning_v2(
            "layerkit:no-build-image", f"{target.bundling_image} cannot be pulled ({why}): built without Docker; "
            f"pull it, or set -c {BUILDER_CONTEXT_KEY}=local to say so")
        return Builder.LOCAL
    return Builder.DOCKER


def resolve_bytecode(scope: Construct, explicit: bool | None) -> bool:
    """The explicit choice, else the ``layerkit:bytecode`` context key, else ``True``."""
    if explicit is not None:
        return explicit
    return str(scope.node.try_get_context(BYTECODE_CONTEXT_KEY) or "true").lower() not in ("false", "0")


def resolve_network(scope: Construct, explicit: str | None) -> str | None:
    """The explicit network, else the ``layerkit:docker-network`` context key, else Docker's default."""
    return explicit or scope.node.try_get_context(NETWORK_CONTEXT_KEY) or None


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


@dataclass
class CodeAsset:
    """A construct's code, and how it was made."""

    code: lambda_.Code
    asset_hash: str
    builder: Builder
    content: Path  # the zip or folder that is uploaded
    build: Build | None = None  # the local build
    bundled_by: Construct | None = None  # the alpha construct that bundled it (in its removed scratch stack)


@jsii.implements(python_alpha.ICommandHooks)
class FinishBundle:
    """Makes the Docker bundle what the local build makes: no dependency files and no ``bin/`` (scripts whose
    shebang is the image's Python), no installer bookkeeping, none of the distributions the layers already
    provide or ``slim`` leaves out, the rest slimmed as the local build slims it (the kit's own
    :mod:`layerkit.slim`, staged in ``_layerkit/``, run by the image's Python), and (with ``bytecode``) ``.pyc``
    that Lambda uses as they are, compiled by the image's Python."""

    def __init__(self, destination: Destination, bytecode: bool, provided: tuple[str, ...] = (),
                 slim: Slim | None = None) -> None:
        self.destination = destination
        self.bytecode = bytecode
        self.provided = provided
        self.slim = slim or Slim()

    def before_bundling(self, input_dir: str, output_dir: str) -> list[str]:
        return []

    def after_bundling(self, input_dir: str, output_dir: str) -> list[str]:
        dropped = " ".join(f"{output_dir}/{name}" for name in sorted({*DEPENDENCY_FILES, EXTRAS, "bin"}))
        bookkeeping = " ".join(f"{output_dir}/*.dist-info/{name}" for name in BOOKKEEPING)
        records = " ".join(f"-e '/[.]dist-info[/]{re.escape(name)},/d'" for name in BOOKKEEPING)
        commands = [
            f"rm -rf {dropped}",
            f"rm -f {bookkeeping}",
            f"(sed -i {records} {output_dir}/*.dist-info/RECORD 2>/dev/null || true)",
        ]
        removed = sorted({*self.provided, *self.slim.without})
        if removed or self.slim.changes_files:
            arguments = [*self.slim.arguments(), *(f"--remove {name}" for name in removed)]
            commands.append(f"PYTHONDONTWRITEBYTECODE=1 PYTHONPATH={input_dir}/{EXTRAS} python -m layerkit.slim "
                            f"{output_dir} {' '.join(arguments)}")
        if self.bytecode:
            commands.append(
                f"(find {output_dir} -name __pycache__ -type d -prune -exec rm -rf {{}} + ; "
                f"{pyc.compileall_command('python', output_dir, self.destination.value)} || true)"
            )
        return commands


def code_asset(scope: Construct, scratch_id: str, source: SourceFolder, target: Target, *, builder: Builder,
               bytecode: bool, docker: DockerOptions, runtime: lambda_.Runtime,
               architecture: lambda_.Architecture, provided: dict[str, str] | None = None,
               index: str = "index.py", handler: str = "handler", slim: Slim | None = None,
               options: tuple[str, ...] = (), asset_hash: str | None = None) -> CodeAsset:
    """The code of a layer (``source.destination`` is LAYER) or function, built by ``builder``.

    ``scope`` hosts the Docker builder's scratch stack (``scratch_id``) while it bundles. ``options`` are parts of
    the fingerprint beside the kit's own (what else decides the content); ``asset_hash``, given, is the hash the
    code is registered under instead of the kit's (the alpha's ``BundlingOptions.asset_hash``).
    """
    provided = provided or {}
    slim = slim or Slim()
    if builder is not Builder.DOCKER:
        with uv.environment_overlay({**_build_arg_environment(docker.build_args), **docker.environment}):
            build = build_source(source, target, cache_dir=resolve_cache_dir(), bytecode=bytecode, provided=provided,
                                 slim=slim, options=options)
        registered = asset_hash or build.asset_hash
        return CodeAsset(_registered(build.zip, registered), registered, builder, build.zip, build=build)
    fingerprint = source.fingerprint(target, bytecode=bytecode, provided=provided, options=(*slim.options(), *options))
    registered = asset_hash or fingerprint
    staged = stage(source, fingerprint, resolve_cache_dir())
    if not Stack.of(scope).bundling_required:  # not a stack this synth deploys: the CDK stages the source too
        return CodeAsset(_registered(staged, registered), registered, builder, staged)
    network = resolve_network(scope, docker.network)
    finish = FinishBundle(source.destination, bytecode, tuple(sorted(provided)), slim)
    bundling = python_alpha.BundlingOptions(
        asset_hash=fingerprint, asset_hash_type=AssetHashType.CUSTOM, network=network,
        image=docker.image or _image(docker.image_dir, target, network, docker.build_args),
        command_hooks=_Hooks(docker.hooks, finish) if docker.hooks is not None else finish,
        environment={**bundling_environment(source), **docker.environment} or None,
        **docker.run_options,
    )
    scratch = Stack(scope, scratch_id)
    scratch.node.set_context(BUNDLING_STACKS, ["**"])  # bundle exactly when the real stack does (checked above)
    alpha: Construct
    if source.destination is Destination.LAYER:
        alpha = python_alpha.PythonLayerVersion(scratch, "Layer", entry=str(staged), compatible_runtimes=[runtime],
                                                compatible_architectures=[architecture], bundling=bundling)
    else:
        alpha = python_alpha.PythonFunction(scratch, "Function", entry=str(staged), index=index, handler=handler,
                                            runtime=runtime, architecture=architecture, bundling=bundling)
    bundle = alpha.node.try_find_child("Code")
    if not isinstance(bundle, s3_assets.Asset):
        raise LayerkitError(f"{scope.node.path}: the bundled code of {type(alpha).__name__} was not found; this "
                            "version of aws-lambda-python-alpha is not supported by layerkit")
    scope.node.try_remove_child(scratch_id)  # its asset registration goes with it: the bundle is uploaded once
    bundle_dir = Path(Stage.of(scope).outdir) / bundle.asset_path
    return CodeAsset(_registered(bundle_dir, registered), registered, builder, bundle_dir, bundled_by=alpha)


#: The build arguments of the alpha's image that a local build honours, as its environment.
_BUILD_ARG_ENVIRONMENT = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY")


def _build_arg_environment(build_args: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in build_args.items() if name in _BUILD_ARG_ENVIRONMENT}


@jsii.implements(python_alpha.ICommandHooks)
class _Hooks:
    """A construct's own command hooks around the kit's: its ``before`` first, then its ``after``, then the kit's
    finishing of the bundle."""

    def __init__(self, user: python_alpha.ICommandHooks, kit: FinishBundle) -> None:
        self.user, self.kit = user, kit

    def before_bundling(self, input_dir: str, output_dir: str) -> list[str]:
        return [*self.user.before_bundling(input_dir, output_dir), *self.kit.before_bundling(input_dir, output_dir)]

    def after_bundling(self, input_dir: str, output_dir: str) -> list[str]:
        return [*self.user.after_bundling(input_dir, output_dir), *self.kit.after_bundling(input_dir, output_dir)]


def _registered(content: Path, asset_hash: str) -> lambda_.Code:
    """``content`` (a zip, or a folder the CLI zips) as code under the kit's own asset hash."""
    return lambda_.Code.from_asset(str(content), asset_hash=asset_hash, asset_hash_type=AssetHashType.CUSTOM)


def _image(image_dir: str | Path | None, target: Target, network: str | None,
           build_args: dict[str, str] | None = None) -> DockerImage | None:
    """The bundling image: the given folder's Dockerfile, or (where a network must be set for its build, or
    build arguments given) the alpha's own, which ``PythonLayerVersion`` builds without one."""
    if image_dir is None and network is None and not build_args:
        return None  # PythonLayerVersion / PythonFunction build their default image themselves
    folder = Path(image_dir).resolve() if image_dir is not None else alpha_image_dir(resolve_cache_dir())
    return DockerImage.from_build(str(folder), build_args={**(build_args or {}), "IMAGE": target.bundling_image},
                                  platform=target.docker_platform, network=network)
