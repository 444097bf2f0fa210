"""``SharedPythonLayer``: a Lambda layer from a folder, built with Docker where a daemon answers, else locally,
for one runtime and architecture or for several (:mod:`layerkit.variants`).

Both builders give the layer the same logical ID and the same asset hash (a fingerprint of the layer's
inputs), so moving between a laptop with Docker and a CI runner without it never creates a new layer version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, AssetHashType, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layerkit.build import Build
from layerkit.bundling import (
    Builder,
    CodeAsset,
    DockerOptions,
    builder_metadata,
    builder_of,
    code_asset,
    requested_builder,
    resolve_builder,
    resolve_bytecode,
)
from layerkit.errors import LayerkitError
from layerkit.share import LayerPublication, Sharing, parameter_name, resolve_sharing
from layerkit.slim import Slim
from layerkit.sources import SourceFolder
from layerkit.targets import Target, python_runtime
from layerkit.variants import Variant, build_variants, targets_of


@dataclass
class PublishedVersion:
    """One layer version a layer publishes, and the targets it serves."""

    layer_version: lambda_.LayerVersion
    variant: Variant
    asset_hash: str
    content: Path  # the zip (or the Docker bundle's folder) that is uploaded
    packages: dict[str, dict[str, str]] = field(default_factory=dict)  # runtime -> distribution -> version
    publication: LayerPublication | None = None  # how other stacks reference it (None: the CDK's own way)


class LayerVersions:
    """What the kit's layer constructs share: the versions they publish, and the one a function gets."""

    versions: list[PublishedVersion]

    def _label(self) -> str:
        return self.node.path  # type: ignore[attr-defined]

    def version_serving(self, target: Target) -> PublishedVersion:
        """The version built for ``target``, or an error naming what the layer serves."""
        for version in self.versions:
            if version.variant.serves(target):
                return version
        serves = ", ".join(f"{'/'.join(v.variant.runtimes)} on {'/'.join(v.variant.architectures)}"
                           for v in self.versions)
        raise LayerkitError(f"{self._label()}: the layer is built for {serves}, not for {target}: add "
                            f"{target.runtime} and {target.architecture} to its runtimes and architectures")

    def version_for(self, scope: Construct, target: Target | None = None) -> lambda_.ILayerVersion:
        """The version for a function of ``target`` in ``scope``'s stack, referenced as the layer's sharing says."""
        if target is None:
            if len(self.versions) > 1:
                raise LayerkitError(
                    f"{self._label()}: the layer has a version per architecture; pass the function's: "
                    "for_stack(stack, runtime=..., architecture=...), or use layerkit.PythonFunction, which picks it")
            version = self.versions[0]
        else:
            version = self.version_serving(target)
        if version.publication is None:
            return version.layer_version
        return version.publication.for_scope(scope)

    def packages_for(self, target: Target) -> dict[str, str]:
        """The distributions (canonical name -> version) the version for ``target`` ships to its functions."""
        return dict(self.version_serving(target).packages.get(target.runtime, {}))


def _packages(pins: Sequence[str]) -> dict[str, str]:
    return dict(pin.split("==", 1) for pin in pins)


class SharedPythonLayer(LayerVersions, Construct):
    """A Python layer built from ``entry`` (``python/`` and a dependency declaration), shareable across stacks.

    Example::

        layer = SharedPythonLayer(self, "MyLayer", entry="layers/my_layer",
                                  runtime=lambda_.Runtime.PYTHON_3_12,
                                  architecture=lambda_.Architecture.X86_64)
        lambda_.Function(other_stack, "Fn", ..., layers=[layer.for_stack(other_stack)])

        # one layer for several runtimes and architectures: a version per architecture (one in all when
        # nothing is compiled), each function given its own by layerkit.PythonFunction
        SharedPythonLayer(self, "Common", entry="layers/common",
                          runtimes=[lambda_.Runtime.PYTHON_3_12, lambda_.Runtime.PYTHON_3_13],
                          architectures=[lambda_.Architecture.X86_64, lambda_.Architecture.ARM_64])

    Args:
        entry: the layer folder: ``python/`` (its modules) and a dependency declaration in ``Pipfile.lock``,
            ``poetry.lock``, ``uv.lock``, ``requirements.txt`` or ``pyproject.toml`` (a layer of dependencies
            alone needs no ``python/``).
        runtime: the Python runtime the layer is built for and compatible with; or ``runtimes``, several.
        architecture: ``X86_64`` or ``ARM_64``; wheels are chosen for it; or ``architectures``, several.
            Default: ``X86_64``.
        builder: ``auto`` (one builder for the app: Docker where the engine can build every target in it, else
            the local build, with one warning saying why: :mod:`layerkit.choice`), ``docker`` or ``local``.
            Default: the context key ``layerkit:builder``, else ``auto``. A layer of several targets is built
            locally.
        sharing: ``ssm`` or ``export``; see :mod:`layerkit.share`.
            Default: the context key ``layerkit:sharing``, else ``ssm``.
        parameter_name: SSM parameter for ``ssm`` sharing. Default: ``/<owner stack>/layers/<folder name>/arn``;
            with a version per architecture, ``/<owner stack>/layers/<folder name>/<architecture>/arn`` (a given
            name ``/x/arn`` becomes ``/x/<architecture>/arn``).
        bytecode: ship ``.pyc`` compiled for the runtime (see :mod:`layerkit.bytecode`).
            Default: the context key ``layerkit:bytecode``, else ``True``.
        docker_image_dir: a folder with a Dockerfile to bundle in (build arg ``IMAGE`` is the runtime's SAM
            build image), e.g. the example's ``docker/``. Default: ``PythonLayerVersion``'s own image.
        docker_network: the network of the bundling container and of the image build. Default: the context key
            ``layerkit:docker-network``, else ``host`` where the engine has no bridge network, else Docker's.
        description: the layer version's description. Default: names the folder and targets.
        asset_excludes: glob patterns of files in ``python/`` that never deploy, beside the never-deploy list
            (``.env``, virtual environments, tool folders: :mod:`layerkit.shipping`). Default: none.
        slim: what to leave out of the installed packages to fit Lambda's 250 MB (their tests, debug symbols,
            whole distributions such as boto3): :class:`~layerkit.slim.Slim`. Default: nothing.
        removal_policy: what CloudFormation does with a replaced version. Default: ``RETAIN``, so that a function
            still on an old version keeps working during a rollout or a rollback.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        entry: str | Path,
        runtime: lambda_.Runtime | None = None,
        architecture: lambda_.Architecture | None = None,
        runtimes: Sequence[lambda_.Runtime] | None = None,
        architectures: Sequence[lambda_.Architecture] | None = None,
        builder: Builder | str | None = None,
        sharing: Sharing | str | None = None,
        parameter_name: str | None = None,
        description: str | None = None,
        docker_image_dir: str | Path | None = None,
        docker_network: str | None = None,
        bytecode: bool | None = None,
        asset_excludes: Sequence[str] = (),
        slim: Slim | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        runtime_list = _one_or_several(construct_id, "runtime", runtime, runtimes, None)
        architecture_list = _one_or_several(construct_id, "architecture", architecture, architectures,
                                            [lambda_.Architecture.X86_64])
        targets = targets_of([r.name for r in runtime_list], [a.name for a in architecture_list])
        self.source = SourceFolder.layer(entry, tuple(asset_excludes))
        self.targets = targets
        self.target = targets[0]
        sharing = resolve_sharing(self, sharing)
        bytecode = resolve_bytecode(self, bytecode)
        for finding in self.source.findings:
            Annotations.of(self).add_warning_v2(f"layerkit:{finding.rule}", finding.message)
        if len(targets) == 1:
            self._one_target(runtime_list[0], architecture_list[0], builder, bytecode, docker_image_dir,
                             docker_network, description, slim, removal_policy, sharing, parameter_name)
        else:
            self._several_targets(builder, bytecode, description, slim, removal_policy, sharing, parameter_name)
        self.node.add_metadata("layerkit:layer", {
            "name": self.source.name, "runtime": self.target.runtime, "architecture": self.target.architecture,
            "runtimes": sorted({t.runtime for t in targets}),
            "architectures": sorted({t.architecture for t in targets}),
            "builder": builder_metadata(lambda: self.code), "asset_hash": self.asset_hash,
            "source": self.source.metadata(),
            "versions": [{"path": v.layer_version.node.path, "architectures": list(v.variant.architectures),
                          "runtimes": list(v.variant.runtimes),
                          "parameter_name": v.publication.parameter_name if v.publication else None}
                         for v in self.versions],
        })

    def _one_target(self, runtime: lambda_.Runtime, architecture: lambda_.Architecture, builder: Any, bytecode: bool,
                    docker_image_dir: Any, docker_network: Any, description: str | None, slim: Slim | None,
                    removal_policy: RemovalPolicy, sharing: Sharing, name: str | None) -> None:
        self.code: CodeAsset | None = code_asset(
            self, "DockerBundle", self.source, self.target, builder=builder, bytecode=bytecode,
            docker=DockerOptions(docker_image_dir, docker_network), runtime=runtime, architecture=architecture,
            slim=slim)
        self.asset_hash = self.code.asset_hash
        self.layer_version = lambda_.LayerVersion(
            self, "Layer", code=self.code.code, compatible_runtimes=[runtime], compatible_architectures=[architecture],
            description=description or f"{self.source.name} ({self.target}), built by layerkit",
            removal_policy=removal_policy)
        self.publication = LayerPublication(self, self.layer_version, self.source.name, sharing, name)
        build = self.code.build
        packages = _packages(build.packages) if build is not None else self._bundle_packages()
        self.versions = [PublishedVersion(self.layer_version, Variant((self.target.architecture,),
                                                                      (self.target.runtime,)),
                                          self.asset_hash, self.code.content, {self.target.runtime: packages},
                                          self.publication)]

    def _bundle_packages(self) -> dict[str, str]:
        from layerkit.archive import asset_sizes
        from layerkit.installed import distributions_in

        assert self.code is not None
        return distributions_in(asset_sizes(self.code.content), in_layer=True)

    @property
    def builder(self) -> Builder:
        """``docker`` or ``local``: what made the layer's code (a layer of several targets: ``local``)."""
        return builder_of(self.code)

    @property
    def build(self) -> Build | None:
        """The local build of a layer of one target (None where Docker bundled it)."""
        return self.code.build if self.code is not None else None

    def _several_targets(self, builder: Any, bytecode: bool, description: str | None, slim: Slim | None,
                         removal_policy: RemovalPolicy, sharing: Sharing, name: str | None) -> None:
        from layerkit.build import report_to_stderr
        from layerkit.cache import resolve_cache_dir

        if requested_builder(self, builder) is Builder.DOCKER:
            raise LayerkitError(f"{self.node.path}: a layer for several runtimes or architectures is built without "
                                "Docker (the kit merges one build per target, which the Lambda build images cannot "
                                "make for another machine); remove builder='docker', or build one layer per target")
        resolve_builder(self, builder, None, what=f"layer {self.node.path}")  # auto: the app builds locally
        self.code = None
        builds = build_variants(self.source, [t.runtime for t in self.targets],
                                [t.architecture for t in self.targets], cache_dir=resolve_cache_dir(),
                                report=report_to_stderr, bytecode=bytecode, slim=slim)
        self.versions = []
        for build in builds:
            variant = build.variant
            suffix = "" if len(builds) == 1 else variant.key.replace("_", "").title()
            layer_version = lambda_.LayerVersion(
                self, f"Layer{suffix}",
                code=lambda_.Code.from_asset(str(build.zip), asset_hash=build.asset_hash,
                                             asset_hash_type=AssetHashType.CUSTOM),
                compatible_runtimes=[python_runtime(r) for r in variant.runtimes],
                compatible_architectures=[_architecture(a) for a in variant.architectures],
                description=description or f"{self.source.name} ({', '.join(variant.runtimes)} on "
                                           f"{'/'.join(variant.architectures)}), built by layerkit",
                removal_policy=removal_policy)
            versioned = None if len(builds) == 1 else variant.key
            parameter = name if name is None or versioned is None else f"{name.removesuffix('/arn')}/{versioned}/arn"
            publication = LayerPublication(
                self, layer_version, self.source.name, sharing,
                parameter or parameter_name_for(self, versioned), construct_id=f"VersionArn{suffix}")
            self.versions.append(PublishedVersion(layer_version, variant, build.asset_hash, build.zip,
                                                  {r: _packages(pins) for r, pins in build.packages.items()},
                                                  publication))
        first = self.versions[0]
        self.layer_version, self.publication, self.asset_hash = first.layer_version, first.publication, \
            first.asset_hash

    @property
    def name(self) -> str:
        """The layer folder's name, e.g. ``my_layer``."""
        return self.source.name

    @property
    def packages(self) -> dict[str, str]:
        """The distributions the layer ships (canonical name -> version) for its first target."""
        return self.packages_for(self.target)

    def for_stack(self, consumer: Construct, *, runtime: lambda_.Runtime | None = None,
                  architecture: lambda_.Architecture | None = None) -> lambda_.ILayerVersion:
        """The layer version as a function in ``consumer``'s stack must reference it (see ``sharing``); for a layer
        of several architectures, pass the function's ``runtime`` and ``architecture``."""
        target = None
        if runtime is not None or architecture is not None:
            target = Target((runtime.name if runtime else self.target.runtime),
                            (architecture.name if architecture else lambda_.Architecture.X86_64.name))
        return self.version_for(consumer, target)

    @staticmethod
    def from_parameter(scope: Construct, construct_id: str, parameter_name: str, **target: Any) -> Any:
        """A layer another app (or account) publishes in SSM parameter ``parameter_name``, built for
        ``runtime=`` (or ``runtimes=``) and ``architecture=``: see :mod:`layerkit.external`."""
        from layerkit.external import ExternalPythonLayer

        return ExternalPythonLayer.from_parameter(scope, construct_id, parameter_name, **target)

    @staticmethod
    def from_layer_version_arn(scope: Construct, construct_id: str, layer_version_arn: str, **target: Any) -> Any:
        """A layer version another app (or account) published, by its ARN: see :mod:`layerkit.external`."""
        from layerkit.external import ExternalPythonLayer

        return ExternalPythonLayer.from_layer_version_arn(scope, construct_id, layer_version_arn, **target)

    def grant_usage(self, *, account_id: str | None = None, organization_id: str | None = None) -> None:
        """Let another account (``account_id``), or every account of an organization (``organization_id``), use
        every version this layer publishes (``lambda:GetLayerVersion``)."""
        _grant(self.versions, account_id, organization_id)


def parameter_name_for(layer: SharedPythonLayer, variant: str | None) -> str:
    from aws_cdk import Stack

    return parameter_name(Stack.of(layer).stack_name, layer.source.name, variant)


def _grant(versions: Sequence[PublishedVersion], account_id: str | None, organization_id: str | None) -> None:
    if (account_id is None) == (organization_id is None):
        raise LayerkitError("grant_usage takes one of account_id='123456789012' or organization_id='o-...'")
    for number, version in enumerate(versions):
        version.layer_version.add_permission(
            f"Usage{account_id or organization_id}{number or ''}".replace("-", ""),
            account_id=account_id or "*", organization_id=organization_id)


def _architecture(name: str) -> lambda_.Architecture:
    return lambda_.Architecture.ARM_64 if name == "arm64" else lambda_.Architecture.X86_64


def _one_or_several(construct_id: str, name: str, one: Any, several: Sequence[Any] | None,
                    default: list[Any] | None) -> list[Any]:
    if one is not None and several is not None:
        raise LayerkitError(f"{construct_id}: give {name}= or {name}s=, not both")
    chosen = [one] if one is not None else list(several) if several is not None else default
    if not chosen:
        raise LayerkitError(f"{construct_id}: no {name}: give {name}=lambda_.{name.title()}... (or {name}s=[...])")
    return chosen
