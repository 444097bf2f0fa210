"""``SharedPythonLayer``: a Lambda layer from a folder, built with Docker where a daemon answers, else locally.

Both builders give the layer the same logical ID and the same asset hash (a fingerprint of the layer's
inputs), so moving between a laptop with Docker and a CI runner without it never creates a new layer version.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Annotations, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layerkit.bundling import Builder, DockerOptions, code_asset, resolve_builder, resolve_bytecode
from layerkit.share import LayerPublication, Sharing, resolve_sharing
from layerkit.slim import Slim
from layerkit.sources import SourceFolder
from layerkit.targets import Target


class SharedPythonLayer(Construct):
    """A Python layer built from ``entry`` (``python/`` and a dependency declaration), shareable across stacks.

    Example::

        layer = SharedPythonLayer(self, "MyLayer", entry="layers/my_layer",
                                  runtime=lambda_.Runtime.PYTHON_3_12,
                                  architecture=lambda_.Architecture.X86_64)
        lambda_.Function(other_stack, "Fn", ..., layers=[layer.for_stack(other_stack)])

    Args:
        entry: the layer folder. It must hold ``python/``; its dependencies may be declared in
            ``Pipfile.lock``, ``poetry.lock``, ``uv.lock``, ``requirements.txt`` or ``pyproject.toml``.
        runtime: the Python runtime the layer is built for and compatible with.
        architecture: ``X86_64`` or ``ARM_64``; wheels are chosen for it. Default: ``X86_64``.
        builder: ``auto`` (Docker where ``docker info`` answers), ``docker`` or ``local``.
            Default: the context key ``layerkit:builder``, else ``auto``.
        sharing: ``ssm`` or ``export``; see :mod:`layerkit.share`.
            Default: the context key ``layerkit:sharing``, else ``ssm``.
        parameter_name: SSM parameter for ``ssm`` sharing. Default: ``/<owner stack>/layers/<folder name>/arn``.
        bytecode: ship ``.pyc`` compiled for the runtime (see :mod:`layerkit.bytecode`).
            Default: the context key ``layerkit:bytecode``, else ``True``.
        docker_image_dir: a folder with a Dockerfile to bundle in (build arg ``IMAGE`` is the runtime's SAM
            build image), e.g. the example's ``docker/``. Default: ``PythonLayerVersion``'s own image.
        docker_network: the network of the bundling container and of the image build (``host`` where the
            Docker engine has no bridge). Default: the context key ``layerkit:docker-network``, else Docker's.
        description: the layer version's description. Default: names the folder and target.
        asset_excludes: glob patterns of files in ``python/`` that never deploy, beside the never-deploy list
            (``.env``, virtual environments, tool folders: :mod:`layerkit.shipping`). Default: none.
        slim: what to leave out of the installed packages to fit Lambda's 250 MB (their tests, debug symbols,
            whole distributions such as boto3): :class:`~layerkit.slim.Slim`. Default: nothing.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        entry: str | Path,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture = lambda_.Architecture.X86_64,
        builder: Builder | str | None = None,
        sharing: Sharing | str | None = None,
        parameter_name: str | None = None,
        description: str | None = None,
        docker_image_dir: str | Path | None = None,
        docker_network: str | None = None,
        bytecode: bool | None = None,
        asset_excludes: Sequence[str] = (),
        slim: Slim | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.target = Target(runtime.name, architecture.name)
        self.source = SourceFolder.layer(entry, tuple(asset_excludes))
        self.builder = resolve_builder(self, builder, self.target)
        bytecode = resolve_bytecode(self, bytecode)
        props = {
            "compatible_runtimes": [runtime],
            "compatible_architectures": [architecture],
            "description": description or f"{self.source.name} ({self.target}), built by layerkit",
            # A function still on an old version must keep working during a rollout or a rollback.
            "removal_policy": RemovalPolicy.RETAIN,
        }
        self.code = code_asset(self, "DockerBundle", self.source, self.target, builder=self.builder,
                               bytecode=bytecode, docker=DockerOptions(docker_image_dir, docker_network),
                               runtime=runtime, architecture=architecture, slim=slim)
        self.build = self.code.build
        self.asset_hash = self.code.asset_hash
        self.layer_version = lambda_.LayerVersion(self, "Layer", code=self.code.code, **props)
        for finding in self.source.findings:
            Annotations.of(self).add_warning_v2(f"layerkit:{finding.rule}", finding.message)
        self.node.add_metadata(
            "layerkit:layer",
            {"name": self.source.name, "runtime": self.target.runtime,
             "architecture": self.target.architecture, "builder": self.builder.value,
             "asset_hash": self.asset_hash, "source": self.source.metadata()},
        )
        self.publication = LayerPublication(
            self, self.layer_version, self.source.name, resolve_sharing(self, sharing), parameter_name
        )

    @property
    def name(self) -> str:
        """The layer folder's name, e.g. ``my_layer``."""
        return self.source.name

    @property
    def packages(self) -> dict[str, str]:
        """The distributions the layer ships (canonical name -> version), as its function users see them."""
        from layerkit.archive import asset_sizes
        from layerkit.installed import distributions_in

        if self.build is not None:
            return dict(pin.split("==", 1) for pin in self.build.packages)
        return distributions_in(asset_sizes(self.code.content), in_layer=True)

    def for_stack(self, consumer: Construct) -> lambda_.ILayerVersion:
        """The layer version as a function in ``consumer``'s stack must reference it (see ``sharing``)."""
        return self.publication.for_scope(consumer)
