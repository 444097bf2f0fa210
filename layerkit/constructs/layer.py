"""``SharedPythonLayer``: a Lambda layer from a folder, built with Docker where a daemon answers, else locally,
for one runtime and architecture or for several (:mod:`layerkit.assemble.matrix`).

Both builders give the layer the same logical ID and the same asset hash (a fingerprint of the layer's
inputs), so moving between a laptop with Docker and a CI runner without it never creates a new layer version.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layerkit.assemble.build_result import Build
from layerkit.constructs.code import (
    Builder,
    CodeAsset,
    CodeOptions,
    builder_metadata,
    builder_of,
    layer_code,
    resolve_bytecode,
)
from layerkit.constructs.external import ExternalPythonLayer
from layerkit.constructs.mistakes import STAND_IN_TARGET, attempt, stand_in_version, tell, told_on
from layerkit.core.errors import LayerkitError
from layerkit.core.targets import Target, lambda_architecture, python_runtime, targets_of
from layerkit.docker.options import DockerOptions
from layerkit.installed.slim import Slim
from layerkit.rules.findings import annotation_id
from layerkit.sharing.layer_versions import BuiltVersion, LayerVersions, publish
from layerkit.sharing.publication import Sharing, resolve_sharing
from layerkit.sources import SourceFolder


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
            the local build, with one warning saying why: :mod:`layerkit.constructs.builder_choice`), ``docker`` or
            ``local``.
            Default: the context key ``layerkit:builder``, else ``auto``. A layer of several targets is built
            locally.
        sharing: ``ssm`` or ``export``; see :mod:`layerkit.sharing.publication`.
            Default: the context key ``layerkit:sharing``, else ``ssm``.
        parameter_name: SSM parameter for ``ssm`` sharing. Default: ``/<owner stack>/layers/<folder name>/arn``;
            with a version per architecture, ``/<owner stack>/layers/<folder name>/<architecture>/arn`` (a given
            name ``/x/arn`` becomes ``/x/<architecture>/arn``).
        bytecode: ship ``.pyc`` compiled for the runtime (see :mod:`layerkit.install.bytecode`).
            Default: the context key ``layerkit:bytecode``, else ``True``.
        docker_image_dir: a folder with a Dockerfile to bundle in (build arg ``IMAGE`` is the runtime's SAM
            build image), e.g. the example's ``docker/``. Default: ``PythonLayerVersion``'s own image.
        docker_network: the network of the bundling container and of the image build. Default: the context key
            ``layerkit:docker-network``, else ``host`` where the engine has no bridge network, else Docker's.
        description: the layer version's description. Default: names the folder and targets.
        asset_excludes: glob patterns of files in ``python/`` that never deploy, beside the never-deploy list
            (``.env``, virtual environments, tool folders: :mod:`layerkit.shipping.selection`). Default: none.
        slim: what to leave out of the installed packages to fit Lambda's 250 MB (their tests, debug symbols,
            whole distributions such as boto3): :class:`~layerkit.installed.slim.Slim`. Default: nothing.
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
        self.code: CodeAsset | None = None
        self.source: SourceFolder | None = None

        def build() -> tuple[list[Target], SourceFolder, list[BuiltVersion], CodeAsset | None]:
            runtime_list = _one_or_several(construct_id, "runtime", runtime, runtimes, None)
            architecture_list = _one_or_several(construct_id, "architecture", architecture, architectures,
                                                [lambda_.Architecture.X86_64])
            targets = targets_of([r.name for r in runtime_list], [a.name for a in architecture_list])
            source = SourceFolder.layer(entry, tuple(asset_excludes))
            how = CodeOptions(builder, resolve_bytecode(self, bytecode),
                              DockerOptions(docker_image_dir, docker_network), slim or Slim())
            built, code = layer_code(self, "DockerBundle", source, targets, how, what=f"layer {self.node.path}",
                                     several_need_local="remove builder='docker', or build one layer per target")
            return targets, source, built, code

        # A mistake is this construct's error (mistakes.py): the app goes on synthesizing with a stand-in.
        result, mistake = attempt(build)
        if result is None:
            tell(self, mistake or "")
            self.broken = True
            targets, built = [STAND_IN_TARGET], [stand_in_version()]
        else:
            targets, self.source, built, self.code = result
        self.targets = targets
        self.target = targets[0]
        name = self.source.name if self.source is not None else construct_id

        def version_of(number: int, version: BuiltVersion, suffix: str) -> lambda_.LayerVersion:
            variant = version.variant
            served = str(self.target) if len(targets) == 1 else \
                f"{', '.join(variant.runtimes)} on {'/'.join(variant.architectures)}"
            return lambda_.LayerVersion(
                self, f"Layer{suffix}", code=version.code,
                compatible_runtimes=[python_runtime(r) for r in variant.runtimes],
                compatible_architectures=[lambda_architecture(a) for a in variant.architectures],
                description=description or f"{name} ({served}), built by layerkit",
                removal_policy=removal_policy)

        with told_on(self):
            sharing = resolve_sharing(self, sharing)
        self.versions = []
        with told_on(self):  # two layers that would publish to one parameter: the second one's error
            self.versions = publish(self, name, built, version_of=version_of,
                                    sharing=sharing if isinstance(sharing, Sharing) else None,
                                    parameter=parameter_name)
        if not self.versions:
            self.broken = True
            self.versions = publish(self, name, built, version_of=version_of, sharing=None, parameter=None)
        first = self.versions[0]
        self.layer_version, self.publication, self.asset_hash = first.layer_version, first.publication, \
            first.asset_hash
        if self.broken or self.source is None:
            return
        for finding in self.source.findings:
            Annotations.of(self).add_warning_v2(annotation_id(finding.rule), finding.message)
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

    @property
    def builder(self) -> Builder:
        """``docker`` or ``local``: what made the layer's code (a layer of several targets: ``local``)."""
        return builder_of(self.code)

    @property
    def build(self) -> Build | None:
        """The local build of a layer of one target (None where Docker bundled it)."""
        return self.code.build if self.code is not None else None

    @property
    def name(self) -> str:
        """The layer folder's name, e.g. ``my_layer`` (its construct id where the folder could not be read)."""
        return self.source.name if self.source is not None else self.node.id

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
        found, mistake = attempt(lambda: self.version_for(consumer, target))
        if found is None:  # the consumer's mistake (a target the layer is not built for): told on it
            tell(consumer, mistake or "")
            return self.versions[0].layer_version
        return found

    @staticmethod
    def from_parameter(scope: Construct, construct_id: str, parameter_name: str,
                       **target: Any) -> ExternalPythonLayer:
        """A layer another app (or account) publishes in SSM parameter ``parameter_name``, built for
        ``runtime=`` (or ``runtimes=``) and ``architecture=``: see :mod:`layerkit.constructs.external`."""
        return ExternalPythonLayer.from_parameter(scope, construct_id, parameter_name, **target)

    @staticmethod
    def from_layer_version_arn(scope: Construct, construct_id: str, layer_version_arn: str,
                               **target: Any) -> ExternalPythonLayer:
        """A layer version another app (or account) published, by its ARN: see :mod:`layerkit.constructs.external`."""
        return ExternalPythonLayer.from_layer_version_arn(scope, construct_id, layer_version_arn, **target)


def _one_or_several(construct_id: str, name: str, one: Any, several: Sequence[Any] | None,
                    default: list[Any] | None) -> list[Any]:
    if one is not None and several is not None:
        raise LayerkitError(f"{construct_id}: give {name}= or {name}s=, not both")
    chosen = [one] if one is not None else list(several) if several is not None else default
    if not chosen:
        raise LayerkitError(f"{construct_id}: no {name}: give {name}=lambda_.{name.title()}... (or {name}s=[...])")
    return chosen
