"""A drop-in for ``aws_cdk.aws_lambda_python_alpha``: migrating an app is a change of import::

    from aws_cdk.aws_lambda_python_alpha import BundlingOptions, PythonFunction, PythonLayerVersion
    # becomes
    from layerkit import BundlingOptions, PythonFunction, PythonLayerVersion

The three take the alpha's keyword arguments (aws-lambda-python-alpha 2.275, its ``lib/``) and mean the same:

- **The same constructs, so the same logical IDs**: ``PythonLayerVersion`` is a ``lambda.LayerVersion`` and
  ``PythonFunction`` a ``lambda.Function`` at the id given, as the alpha's are: a deployed app updates in place.
- **The same layout and defaults**: a layer's entry is its code (its files land in ``python/``), ``index`` is
  ``index.py``, ``handler`` is ``handler``, ``compatible_architectures`` is ``[X86_64]``, no removal policy.
  ``compatible_runtimes`` defaults to python3.7 in the alpha, which Lambda no longer runs and the kit does not
  build: left out, it is a one-line error asking for the runtimes.
- **Several runtimes and architectures are all built**: the alpha bundles once, for the first of each, and
  declares the layer compatible with all; the kit builds every pair (:mod:`layerkit.assemble.matrix`). The construct is
  the version of its first architecture; another architecture's version is a child of it, and the kit's
  ``PythonFunction`` picks the version of its own target.
- **``BundlingOptions``**: what both builders honour (``asset_excludes``, ``environment``, ``asset_hash`` and
  ``asset_hash_type``, the poetry options, ``build_args`` for the image and, locally, its index and proxy
  settings) is honoured by both; what only a container can honour (``image``, ``command_hooks``, ``volumes``,
  ``volumes_from``, ``user``, ``entrypoint``, ``command``, ``working_directory``, ``security_opt``,
  ``bundling_file_access``, ``platform``, ``output_path_suffix``) selects the Docker builder, and stops the synth in
  one line naming the option where no Docker answers.
- A keyword the alpha does not take either stops with the kit's error naming the one meant.

What changes: the layer is built without Docker where none answers (by the kit's build, as it would be in the
Lambda build image), the kit's guardrails apply (``layerkit.check``), and the dependency files no longer ship in
``python/``. Cross-stack references stay the CDK's own unless ``sharing=`` is given (see ``docs/migrating.md``).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aws_cdk import Annotations, AssetHashType, DockerImage
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_python_alpha as python_alpha
from constructs import Construct

from layerkit.constructs import function as kit_function
from layerkit.constructs.code import (
    Builder,
    CodeAsset,
    CodeOptions,
    builder_metadata,
    builder_of,
    layer_code,
    resolve_bytecode,
)
from layerkit.constructs.mistakes import STAND_IN_TARGET, attempt, stand_in_version, tell, told_on
from layerkit.core.choices import one_of
from layerkit.core.errors import LayerkitError, UnsupportedTargetError
from layerkit.core.targets import Target, lambda_architecture, targets_of
from layerkit.docker.engine import docker_available
from layerkit.docker.options import DockerOptions
from layerkit.installed.slim import Slim
from layerkit.rules.findings import annotation_id
from layerkit.sharing.layer_versions import BuiltVersion, LayerVersions, publish
from layerkit.sharing.publication import SHARING_CONTEXT_KEY, Sharing
from layerkit.sources import SourceFolder

#: The alpha's command hooks interface: a class of yours that implements it works with the kit as it is.
ICommandHooks = python_alpha.ICommandHooks

#: What only the bundling container can do: given, the Docker builder runs. (``platform`` names the target
#: architecture, which the local build serves as well: see :meth:`BundlingOptions.architecture_for`.)
CONTAINER_ONLY = ("image", "command_hooks", "volumes", "volumes_from", "user", "entrypoint", "command",
                  "working_directory", "security_opt", "bundling_file_access", "output_path_suffix")
#: Docker's platforms -> Lambda's architecture names.
_PLATFORMS = {"linux/amd64": "x86_64", "linux/x86_64": "x86_64", "linux/arm64": "arm64", "linux/arm64/v8": "arm64",
              "linux/aarch64": "arm64"}


@dataclass(frozen=True)
class BundlingOptions:
    """The alpha's ``BundlingOptions``, every field with its default (see the module for what each does here)."""

    asset_excludes: Sequence[str] = ()
    asset_hash: str | None = None
    asset_hash_type: AssetHashType | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    bundling_file_access: Any = None
    command: Sequence[str] | None = None
    command_hooks: Any = None
    entrypoint: Sequence[str] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    image: DockerImage | None = None
    network: str | None = None
    output_path_suffix: str | None = None
    platform: str | None = None
    poetry_include_hashes: bool = False
    poetry_without_urls: bool = False
    security_opt: str | None = None
    user: str | None = None
    volumes: Sequence[Any] | None = None
    volumes_from: Sequence[str] | None = None
    working_directory: str | None = None

    @classmethod
    def of(cls, value: Any, where: str) -> BundlingOptions:
        """The kit's options from the kit's, the alpha's own (a jsii struct), or a dict of its keywords."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        names = {f.name for f in fields(cls)}
        if isinstance(value, Mapping):
            _refuse_unknown(where + ": bundling", value, names)
            return cls(**value)
        if isinstance(value, python_alpha.BundlingOptions):
            return cls(**{name: getattr(value, name) for name in names if getattr(value, name, None) is not None})
        raise LayerkitError(f"{where}: bundling must be layerkit.BundlingOptions(...), not {type(value).__name__}")

    def container_only(self) -> list[str]:
        """The options given that only a container can honour."""
        return [name for name in CONTAINER_ONLY if getattr(self, name) not in (None, (), [], {})]

    def architecture_for(self, where: str, declared: Sequence[str], given: bool, keyword: str) -> None:
        """Check ``platform`` against the architectures the construct declares (``declared``; ``given`` False: the
        default, x86_64, as Lambda takes it): the alpha bundles for ``platform``, so one that names another machine
        would ship wheels that cannot load. ``keyword`` is the construct's argument that sets the architecture."""
        if not self.platform:
            return
        architecture = _PLATFORMS.get(self.platform.lower())
        if architecture is None:
            raise LayerkitError(f"{where}: bundling.platform {self.platform!r} is not a Lambda architecture; use "
                                "'linux/amd64' (x86_64) or 'linux/arm64' (arm64), or leave it out: the kit builds "
                                f"for the {keyword} given")
        if architecture not in declared:
            fix = "ARM_64" if architecture == "arm64" else "X86_64"
            said = f"{keyword} is {', '.join(declared)}" if given else f"no {keyword} is given, so Lambda runs it " \
                                                                         "on x86_64"
            wanted = f"[lambda_.Architecture.{fix}]" if keyword.endswith("s") else f"lambda_.Architecture.{fix}"
            raise LayerkitError(f"{where}: bundling.platform {self.platform} builds for {architecture}, but {said}: "
                                f"its compiled wheels would not load; give {keyword}={wanted}, or drop "
                                "bundling.platform (the kit builds for the architecture given)")

    def fingerprint_parts(self) -> tuple[str, ...]:
        """What the container-only options make of the content: part of the asset hash."""
        parts = []
        for name in self.container_only():
            value = getattr(self, name)
            if name == "command_hooks":
                value = (value.before_bundling("/asset-input", "/asset-output"),
                         value.after_bundling("/asset-input", "/asset-output"))
            elif name == "image":
                value = getattr(value, "image", repr(value))
            parts.append(f"bundling {name}={value!r}")
        return tuple(parts)

    def docker(self, image_dir: Any = None, network: str | None = None) -> DockerOptions:
        run = {name: getattr(self, name) for name in ("volumes", "volumes_from", "user", "entrypoint", "command",
                                                      "working_directory", "security_opt", "bundling_file_access",
                                                      "platform", "output_path_suffix")
               if getattr(self, name) not in (None, (), [])}
        return DockerOptions(image_dir, self.network or network, self.image, self.command_hooks, dict(self.build_args),
                             dict(self.environment), run, required_by=next(iter(self.container_only()), None))

    def code_options(self, builder: Builder | str | None, bytecode: bool, slim: Slim | None,
                     image_dir: Any = None, network: str | None = None) -> CodeOptions:
        """How the kit builds the code these options describe (``network``: the kit's ``docker_network``, where
        ``bundling.network`` names none)."""
        return CodeOptions(builder, bytecode, self.docker(image_dir, network), slim or Slim(),
                           self.fingerprint_parts(), self.registered_hash())

    def registered_hash(self) -> str | None:
        """The hash to register the code under, where the options name one (CUSTOM with ``asset_hash``)."""
        # SOURCE (the default) and OUTPUT are the kit's fingerprint: its builds are the same bytes for the same inputs.
        if self.asset_hash_type is AssetHashType.CUSTOM and not self.asset_hash:
            raise LayerkitError("bundling.asset_hash_type=CUSTOM needs bundling.asset_hash")
        return self.asset_hash if self.asset_hash else None


def _refuse_unknown(where: str, given: Mapping[str, Any], known: set[str]) -> None:
    for name in given:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; it takes {', '.join(sorted(known))}"
            raise LayerkitError(f"{where}: unknown argument {name!r}{hint}")


def _builder(scope: Construct, where: str, bundling: BundlingOptions, given: Any) -> Builder | str | None:
    """Docker where an option only a container honours is given, else the builder asked for (``auto`` is
    resolved with the app's other constructs: :mod:`layerkit.constructs.builder_choice`)."""
    if needs := bundling.container_only():
        if not docker_available():
            raise LayerkitError(f"{where}: bundling.{needs[0]} runs only in the bundling container, and no Docker "
                                f"daemon answers: start Docker, or drop bundling.{needs[0]} to build without it")
        return Builder.DOCKER
    return given


#: The keyword arguments of lambda.Function's own (everything a PythonFunction passes through).
_FUNCTION_OPTIONS = {name for name in inspect.signature(lambda_.FunctionOptions.__init__).parameters if name != "self"}


class PythonFunction(kit_function.PythonFunction):
    """The alpha's ``PythonFunction`` (``entry``, ``runtime``, ``index``, ``handler``, ``bundling`` and every
    ``lambda.Function`` option), built by the kit: see the module, and
    :class:`layerkit.constructs.function.PythonFunction` for the kit's own arguments beside the alpha's."""

    def __init__(self, scope: Construct, construct_id: str, *, entry: str | Path, runtime: lambda_.Runtime,
                 bundling: Any = None, **options: Any) -> None:
        where = f"PythonFunction {scope.node.path}/{construct_id}"
        kit_own = {"index", "handler", "architecture", "layers", "asset_excludes", "builder", "bytecode",
                   "docker_image_dir", "docker_network", "slim"}
        unknown = sorted(set(options) - _FUNCTION_OPTIONS - kit_own)
        architecture = options.pop("architecture", None)  # as the alpha: none given, none written

        def mapped() -> tuple[BundlingOptions, CodeOptions, tuple[str, ...]]:
            _refuse_unknown(where, dict.fromkeys(unknown), _FUNCTION_OPTIONS | kit_own)
            options_of = BundlingOptions.of(bundling, where)
            options_of.architecture_for(where, [(architecture or lambda_.Architecture.X86_64).name],
                                        architecture is not None, "architecture")
            builder = _builder(scope, where, options_of, options.pop("builder", None))
            how = options_of.code_options(builder, resolve_bytecode(scope, options.pop("bytecode", None)),
                                          options.pop("slim", None), options.pop("docker_image_dir", None),
                                          options.pop("docker_network", None))
            return options_of, how, (*options.pop("asset_excludes", ()), *options_of.asset_excludes)

        # A mistake in the alpha's own arguments is the function's error, as one in the kit's (mistakes.py).
        found, mistake = attempt(mapped)
        for name in (*unknown, "builder", "bytecode", "slim", "docker_image_dir", "docker_network", "asset_excludes"):
            options.pop(name, None)
        options_of, how, excludes = found if found is not None else (BundlingOptions(), None, ())
        super().__init__(scope, construct_id, entry=entry, runtime=runtime, architecture=architecture,
                         asset_excludes=excludes, code_options=how, mistake=mistake,
                         poetry=(options_of.poetry_include_hashes, options_of.poetry_without_urls), **options)


class PythonLayerVersion(LayerVersions, lambda_.LayerVersion):
    """The alpha's ``PythonLayerVersion`` (``entry``, ``compatible_runtimes``, ``compatible_architectures``,
    ``bundling``, ``description``, ``layer_version_name``, ``license``, ``removal_policy``), built by the kit for
    every runtime and architecture it names: see the module.

    Beside the alpha's arguments: ``sharing`` (``ssm`` or ``export``: reference the layer from other stacks as
    :class:`~layerkit.constructs.layer.SharedPythonLayer` does; default: the CDK's own references, as the alpha's),
    ``parameter_name``, ``builder``, ``bytecode``, ``slim``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, entry: str | Path,
                 compatible_runtimes: Sequence[lambda_.Runtime] | None = None,
                 compatible_architectures: Sequence[lambda_.Architecture] | None = None, bundling: Any = None,
                 description: str | None = None, layer_version_name: str | None = None, license: str | None = None,
                 removal_policy: Any = None, sharing: Sharing | str | None = None, parameter_name: str | None = None,
                 builder: Builder | str | None = None, bytecode: bool | None = None, slim: Any = None,
                 **unknown: Any) -> None:
        where = f"PythonLayerVersion {scope.node.path}/{construct_id}"
        common = {"description": description, "layer_version_name": layer_version_name, "license": license,
                  "removal_policy": removal_policy}
        self.code_asset: CodeAsset | None = None
        self.source: SourceFolder | None = None

        def build() -> tuple[list[Target], SourceFolder, list[BuiltVersion], CodeAsset | None]:
            if unknown:
                _refuse_unknown(where, unknown, {"entry", "compatible_runtimes", "compatible_architectures",
                                                 "bundling", "description", "layer_version_name", "license",
                                                 "removal_policy", "sharing", "parameter_name", "builder", "bytecode",
                                                 "slim"})
            if not compatible_runtimes:
                raise UnsupportedTargetError(
                    f"{where}: give compatible_runtimes: the alpha's default is python3.7, which Lambda no longer "
                    "runs and the kit does not build; e.g. compatible_runtimes=[lambda_.Runtime.PYTHON_3_12]")
            for runtime in compatible_runtimes:
                if runtime.family != lambda_.RuntimeFamily.PYTHON:
                    raise UnsupportedTargetError(f"{where}: runtime {runtime.name} is not Python; use Python runtimes")
            architectures = list(compatible_architectures or [lambda_.Architecture.X86_64])
            targets = targets_of([r.name for r in compatible_runtimes], [a.name for a in architectures])
            options_of = BundlingOptions.of(bundling, where)
            options_of.architecture_for(where, [a.name for a in architectures], bool(compatible_architectures),
                                        "compatible_architectures")
            source = SourceFolder.entry_layer(entry, tuple(options_of.asset_excludes), f"layer {construct_id}",
                                              poetry=(options_of.poetry_include_hashes,
                                                      options_of.poetry_without_urls))
            chosen = _builder(scope, where, options_of, builder)
            built, code_asset = layer_code(
                scope, f"{construct_id}DockerBundle", source, targets,
                options_of.code_options(chosen, resolve_bytecode(scope, bytecode), slim), what=where,
                several_need_local=f"bundling.{(options_of.container_only() or ['?'])[0]} needs the container: "
                                   "build one layer per target for it")
            return targets, source, built, code_asset

        # A mistake is this construct's error (mistakes.py): the app goes on synthesizing with a stand-in.
        result, mistake = attempt(build)
        if result is None:
            targets, built = [STAND_IN_TARGET], [stand_in_version()]
        else:
            targets, self.source, built, self.code_asset = result
        self.target = targets[0]
        first = built[0]
        runtimes = list(compatible_runtimes or []) if result is not None else None
        # As the alpha: the architectures given are written, none when none is given (Lambda's default applies).
        super().__init__(scope, construct_id, code=first.code, compatible_runtimes=runtimes,
                         compatible_architectures=[lambda_architecture(a) for a in first.variant.architectures]
                         if compatible_architectures and result is not None else None, **common)
        if mistake is not None:
            tell(self, mistake)
            self.broken = True
        self.asset_hash = first.asset_hash

        def version_of(number: int, version: BuiltVersion, suffix: str) -> lambda_.LayerVersion:
            if number == 0:
                return self  # the construct is its first version, at the id given, as the alpha's
            return lambda_.LayerVersion(
                self, suffix, code=version.code, compatible_runtimes=runtimes,
                compatible_architectures=[lambda_architecture(a) for a in version.variant.architectures], **common)

        self.versions = []
        if not self.broken:
            with told_on(self):  # two layers that would publish to one parameter: the second one's error
                chosen_sharing = one_of(Sharing, sharing, where=where, argument="sharing",
                                        context_key=SHARING_CONTEXT_KEY) if sharing else None
                self.versions = publish(self, construct_id, built, version_of=version_of, sharing=chosen_sharing,
                                        parameter=parameter_name)
        if not self.versions:
            self.broken = True
            self.versions = publish(self, construct_id, built[:1], version_of=version_of, sharing=None, parameter=None)
        if self.broken or self.source is None:
            return
        for finding in self.source.findings:
            Annotations.of(self).add_warning_v2(annotation_id(finding.rule), finding.message)
        self.node.add_metadata("layerkit:layer", {
            "name": construct_id, "runtime": self.target.runtime, "architecture": self.target.architecture,
            "runtimes": sorted({t.runtime for t in targets}),
            "architectures": sorted({t.architecture for t in targets}),
            "builder": builder_metadata(lambda: self.code_asset), "asset_hash": self.asset_hash,
            "source": self.source.metadata()})

    @property
    def name(self) -> str:
        return self.node.id

    @property
    def builder(self) -> Builder:
        """``docker`` or ``local``: what made the layer's code (a layer of several targets: ``local``)."""
        return builder_of(self.code_asset)
