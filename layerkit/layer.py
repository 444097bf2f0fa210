"""``SharedPythonLayer``: a Lambda layer from a folder, built with Docker where a daemon answers, else locally.

Both builders give the layer the same logical ID and the same asset hash (a fingerprint of the layer's
inputs), so moving between a laptop with Docker and a CI runner without it never creates a new layer version.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jsii
from aws_cdk import Annotations, AssetHashType, DockerImage, FileAssetPackaging, RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_python_alpha as python_alpha
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from layerkit.build import build_layer, resolve_cache_dir
from layerkit.docker import docker_available, stage_for_python_layer_version
from layerkit.errors import LayerkitError
from layerkit.share import LayerPublication, Sharing, resolve_sharing
from layerkit.source import LayerSource
from layerkit.targets import Target

BUILDER_CONTEXT_KEY = "layerkit:builder"
BUILDERS = ("auto", "docker", "local")
BYTECODE_CONTEXT_KEY = "layerkit:bytecode"


def resolve_builder(scope: Construct, explicit: str | None) -> str:
    """``docker`` or ``local``: the explicit choice, else the context key, else ``auto`` (Docker if it answers)."""
    choice = explicit or scope.node.try_get_context(BUILDER_CONTEXT_KEY) or "auto"
    if choice not in BUILDERS:
        raise LayerkitError(
            f"{scope.node.path}: unknown builder {choice!r}; use one of {', '.join(BUILDERS)} "
            f"(argument builder= or -c {BUILDER_CONTEXT_KEY}=...)"
        )
    if choice == "auto":
        return "docker" if docker_available() else "local"
    return choice


@jsii.implements(python_alpha.ICommandHooks)
class _FinishBundle:
    """Makes the Docker bundle what the local build makes: no requirements file, no ``bin/``, and (with
    ``bytecode``) ``.pyc`` that Lambda uses as they are, compiled by the image's Python, the runtime's own."""

    def __init__(self, bytecode: bool) -> None:
        self.bytecode = bytecode

    def before_bundling(self, input_dir: str, output_dir: str) -> list[str]:
        return []

    def after_bundling(self, input_dir: str, output_dir: str) -> list[str]:
        commands = [f"rm -rf {output_dir}/requirements.txt {output_dir}/bin"]
        if self.bytecode:
            commands.append(
                f"(find {output_dir} -name __pycache__ -type d -prune -exec rm -rf {{}} + ; "
                f"python -m compileall -q -j 0 --invalidation-mode unchecked-hash -s {output_dir} "
                f"-p /opt/python {output_dir} || true)"
            )
        return commands


def _deploy_under_fingerprint(layer_version: lambda_.LayerVersion, asset_hash: str) -> None:
    """Point the Docker-built layer at the S3 key the local builder would give it.

    The CDK mixes a bundled asset's Docker image tag and command into its hash, so a ``PythonLayerVersion``
    and a local build of the same folder would land under different S3 keys: every switch between a machine
    with Docker and one without would publish a new layer version. The bundle Docker made is registered again
    under the key ``Code.from_asset(..., asset_hash=asset_hash)`` gives, and the layer points at that.
    """
    bundled = layer_version.node.find_child("Code")
    assert isinstance(bundled, s3_assets.Asset)
    location = Stack.of(layer_version).synthesizer.add_file_asset(
        source_hash=hashlib.sha256(asset_hash.encode()).hexdigest(),  # what the CDK does to a custom hash
        file_name=bundled.asset_path,
        packaging=FileAssetPackaging.ZIP_DIRECTORY,
    )
    resource = layer_version.node.default_child
    assert isinstance(resource, lambda_.CfnLayerVersion)
    resource.content = lambda_.CfnLayerVersion.ContentProperty(
        s3_bucket=location.bucket_name, s3_key=location.object_key
    )


class SharedPythonLayer(Construct):
    """A Python layer built from ``entry`` (``requirements.txt`` + ``python/``), shareable across stacks.

    Example::

        layer = SharedPythonLayer(self, "MyLayer", entry="layers/my_layer",
                                  runtime=lambda_.Runtime.PYTHON_3_12,
                                  architecture=lambda_.Architecture.X86_64)
        lambda_.Function(other_stack, "Fn", ..., layers=[layer.for_stack(other_stack)])

    Args:
        entry: the layer folder. It must hold ``python/``; ``requirements.txt`` is optional.
        runtime: the Python runtime the layer is built for and compatible with.
        architecture: ``X86_64`` or ``ARM_64``; wheels are chosen for it.
        builder: ``auto`` (default: Docker where ``docker info`` answers), ``docker`` or ``local``.
            Default: the context key ``layerkit:builder``, else ``auto``.
        sharing: ``ssm`` (default) or ``export``; see :mod:`layerkit.share`.
            Default: the context key ``layerkit:sharing``, else ``ssm``.
        parameter_name: SSM parameter for ``ssm`` sharing. Default: ``/<owner stack>/layers/<folder name>/arn``.
        bytecode: ship ``.pyc`` compiled for the runtime (see :func:`layerkit.build.build_layer`).
            Default: the context key ``layerkit:bytecode``, else ``True``.
        docker_image_dir: a folder with a Dockerfile to bundle in (build arg ``IMAGE`` is the runtime's SAM
            build image), e.g. the example's ``docker/``. Default: ``PythonLayerVersion``'s own image.
        description: the layer version's description. Default: names the folder and target.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        entry: str | Path,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture = lambda_.Architecture.X86_64,
        builder: str | None = None,
        sharing: Sharing | str | None = None,
        parameter_name: str | None = None,
        description: str | None = None,
        docker_image_dir: str | Path | None = None,
        bytecode: bool | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.target = Target(runtime.name, architecture.name)
        self.source = LayerSource.load(entry)
        self.builder = resolve_builder(self, builder)
        if bytecode is None:
            bytecode = str(self.node.try_get_context(BYTECODE_CONTEXT_KEY) or "true").lower() not in ("false", "0")
        props = {
            "compatible_runtimes": [runtime],
            "compatible_architectures": [architecture],
            "description": description or f"{self.source.name} ({self.target}), built by layerkit",
            # A function still on an old version must keep working during a rollout or a rollback.
            "removal_policy": RemovalPolicy.RETAIN,
        }
        cache_dir = resolve_cache_dir()
        if self.builder == "docker":
            self.asset_hash = self.source.fingerprint(self.target, bytecode=bytecode)
            staged = stage_for_python_layer_version(self.source, self.asset_hash, cache_dir)
            image = None
            if docker_image_dir is not None:
                image = DockerImage.from_build(
                    str(Path(docker_image_dir).resolve()),
                    build_args={"IMAGE": runtime.bundling_image.image},
                    platform=architecture.docker_platform,
                )
            self.layer_version: lambda_.LayerVersion = python_alpha.PythonLayerVersion(
                self, "Layer", entry=str(staged),
                bundling=python_alpha.BundlingOptions(
                    asset_hash=self.asset_hash, asset_hash_type=AssetHashType.CUSTOM,
                    command_hooks=_FinishBundle(bytecode),
                    image=image,
                ),
                **props,
            )
            _deploy_under_fingerprint(self.layer_version, self.asset_hash)
            self.build = None
        else:
            self.build = build_layer(self.source.root, self.target, cache_dir=cache_dir, bytecode=bytecode)
            self.asset_hash = self.build.asset_hash
            code = lambda_.Code.from_asset(
                str(self.build.zip), asset_hash=self.asset_hash, asset_hash_type=AssetHashType.CUSTOM
            )
            self.layer_version = lambda_.LayerVersion(self, "Layer", code=code, **props)
        for warning in self.source.warnings:
            Annotations.of(self).add_warning_v2("layerkit:unpinned-requirement", warning)
        self.node.add_metadata(
            "layerkit:layer",
            {"name": self.source.name, "runtime": self.target.runtime,
             "architecture": self.target.architecture, "builder": self.builder,
             "asset_hash": self.asset_hash},
        )
        self.publication = LayerPublication(
            self, self.layer_version, self.source.name, resolve_sharing(self, sharing), parameter_name
        )

    @property
    def name(self) -> str:
        """The layer folder's name, e.g. ``my_layer``."""
        return self.source.name

    def for_stack(self, consumer: Construct) -> lambda_.ILayerVersion:
        """The layer version as a function in ``consumer``'s stack must reference it (see ``sharing``)."""
        return self.publication.for_scope(consumer)
