"""Guardrails for a whole app, applied at synth with one call: ``layerkit.check(app)``.

Each mistake becomes an error or a warning on the construct at fault (the CDK prints its path), in one
sentence that names the rule and the fix. ``cdk synth`` fails on errors, before anything is deployed. The
content rules are :mod:`layerkit.rules`, the ones ``layerkit build`` applies too; this module finds what each
function runs (its code and its layers, resolved by construct, across stacks) and applies them.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    Annotations,
    Aspects,
    AssetStaging,
    CfnParameter,
    DefaultTokenResolver,
    FeatureFlags,
    IAspect,
    Reference,
    Stage,
    StringConcat,
    Tokenization,
)
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct, IConstruct

from layerkit import native, rules
from layerkit.archive import asset_sizes
from layerkit.errors import LayerkitError
from layerkit.installed import distributions_in
from layerkit.layer import LayerVersions
from layerkit.rules import MAX_LAYERS, Finding, Severity, Shares
from layerkit.targets import RUNTIMES, Target
from layerkit.variants import runtimes_of_path

#: Above this a zip cannot be uploaded to Lambda directly; the CDK uploads through S3, which is fine.
DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024
RECOGNIZE_LAYER_VERSION = "@aws-cdk/aws-lambda:recognizeLayerVersion"


class Content:
    """What a layer or function code ships, read from its staged asset: a zip, or a folder the CLI zips."""

    def __init__(self, asset: Path, source: Path | None = None) -> None:
        self.asset = asset
        self.source = source  # the folder or file the CDK staged it from, when known

    @cached_property
    def sizes(self) -> dict[str, int]:
        return asset_sizes(self.asset)

    @property
    def unzipped_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def zipped_bytes(self) -> int | None:
        return self.asset.stat().st_size if self.asset.is_file() else None

    @cached_property
    def _native_heads(self) -> dict[str, bytes]:
        """The first bytes of every compiled file, read in one pass: a zip is opened once, not once per file
        (a layer with numpy and pandas ships a hundred of them)."""
        names = [name for name in self.sizes if native.is_native_name(name)]
        if not self.asset.is_file():
            return {name: _head(self.asset / name) for name in names}
        with zipfile.ZipFile(self.asset) as archive:
            heads = {}
            for name in names:
                with archive.open(name) as member:
                    heads[name] = member.read(native.HEAD_BYTES)
            return heads

    def read_head(self, name: str) -> bytes:
        """The first :data:`~layerkit.native.HEAD_BYTES` of the compiled file ``name`` (one that
        :func:`~layerkit.native.is_native_name` names so)."""
        return self._native_heads[name]

    @property
    def top_level_names(self) -> set[str]:
        """Importable names a layer puts at the top of ``/opt/python`` (modules and packages)."""
        names = set()
        for path in self.sizes:
            parts = path.split("/")
            if parts[0] != "python" or len(parts) < 2:
                continue
            if runtimes_of_path(path):  # a runtime's own site-packages of a layer built for several
                parts = ["python", *parts[4:]]
                if len(parts) < 2:
                    continue
            top = parts[1]
            if len(parts) == 2:
                if not top.endswith((".py", ".so", ".pyd")):
                    continue
                top = top.split(".")[0]
            if top.endswith((".dist-info", ".egg-info", ".data")) or top in ("__pycache__", "bin", "lib"):
                continue
            names.add(top)
        return names

    def link_findings(self, label: str) -> list[Finding]:
        """The rule for links of :mod:`layerkit.shipping`, applied to the folder the CDK staged this asset from
        (it copies what a link outside the folder reaches): a link to a pseudo-file, a device, a FIFO, or one
        that loops or dangles is an error; one that leads outside the folder, a warning."""
        if self.source is None or not self.source.is_dir():
            return []
        from layerkit.errors import LayerSourceError
        from layerkit.shipping import select

        try:
            selection = select(self.source, boundary=self.source, what=label, never_deploy=())
        except LayerSourceError as error:
            return [Finding(Severity.ERROR, "unsafe-link", str(error))]
        return [Finding(Severity.WARNING, "link-outside",
                        f"{label}: {link} in {self.source} is a link to {target}, outside the folder: the CDK copies "
                        "what it reaches into the asset; copy the files in if that is not meant")
                for link, target in selection.outside]

    def shares(self, in_layer: bool) -> Shares:
        """What of it could be left out to fit Lambda's limit (its compiled files are read for debug symbols)."""
        from layerkit import elf

        debug = 0
        for name in self.sizes:
            if native.is_native_name(name):
                if self.asset.is_file():
                    with zipfile.ZipFile(self.asset) as archive:
                        debug += elf.debug_bytes(archive.read(name))
                else:
                    debug += elf.debug_bytes_of(self.asset / name)
        return Shares.of(self.sizes, in_layer=in_layer, debug_symbols=debug)

    def distributions(self, in_layer: bool) -> dict[str, str]:
        """Installed distributions (canonical name -> version): a layer's in ``python/``, a function's at
        its root."""
        return distributions_in(self.sizes, in_layer=in_layer)


def _head(path: Path) -> bytes:
    with open(path, "rb") as file:
        return file.read(native.HEAD_BYTES)


@dataclass
class LayerRef:
    """A layer a function uses, and what is known of it (nothing for an external ARN)."""

    label: str
    construct: lambda_.LayerVersion | None = None
    shared: Any = None  # the kit's layer construct it is a version of (its folder, its name)
    runtimes: list[str] = field(default_factory=list)
    architectures: list[str] = field(default_factory=list)
    content: Content | None = None
    owned_elsewhere: Any = None  # an ExternalPythonLayer: its target is known, its content is not


def layer_findings(ref: LayerRef, content: Content) -> list[Finding]:
    """The rules about one layer's own content."""
    findings = rules.layer_layout(ref.label, content.sizes)
    findings += _escapes(f"layer {ref.label}", content)
    if ref.shared is not None:
        root = ref.shared.source.code_root
        findings += rules.packages_without_init(
            ref.label, [p.relative_to(root).as_posix() for p in ref.shared.source.code_files])
        copies = ref.shared.source.installed_copies()
        declaration = ref.shared.source.declaration
        findings += rules.installed_copies(f"layer {ref.label}", "python/", [(c.name, c.version) for c in copies],
                                           declaration.kind if declaration else "requirements.txt")
    # Every target it declares: a compiled file in a runtime's own site-packages must fit that runtime, one in
    # python/ must fit them all (a mismatch with a function is reported per function).
    targets = [Target(r, a) for r in ref.runtimes if r in RUNTIMES for a in ref.architectures]
    seen: set[str] = set()
    for target in targets:
        relevant = [p for p in content.sizes if runtimes_of_path(p) in (None, target.runtime)]
        for finding in rules.native_code(f"layer {ref.label}", relevant, content.read_head, target,
                                         "rebuild the layer for its declared runtimes and architectures"):
            if finding.message not in seen:
                seen.add(finding.message)
                findings.append(finding)
    if content.zipped_bytes is not None and content.zipped_bytes > DIRECT_UPLOAD_BYTES:
        findings.append(Finding(Severity.INFO, "large-zip",
                                f"layer {ref.label} is {content.zipped_bytes / 1e6:.0f} MB zipped, over Lambda's "
                                "50 MB direct-upload limit: the CDK uploads it through S3, which is fine"))
    return findings


def function_findings(runtime: str, architecture: str, code: Content | None, layers: list[LayerRef],
                      sorted_by_cdk: bool = False) -> list[Finding]:
    """The rules about what one function runs: its code plus its layers, in order (``sorted_by_cdk``: the CDK
    reordered them, see :func:`_shadowed`)."""
    findings = []
    if len(layers) > MAX_LAYERS:
        findings.append(Finding(Severity.ERROR, "too-many-layers",
                                f"the function has {len(layers)} layers; Lambda allows {MAX_LAYERS}: merge layers "
                                "(e.g. put shared dependencies in one layer)"))
    total = (code.unzipped_bytes if code else 0) + sum(r.content.unzipped_bytes for r in layers if r.content)
    if total > rules.WARN_AT * rules.MAX_UNZIPPED_BYTES:  # measured only then: it reads the compiled files
        shares = sum((r.content.shares(in_layer=True) for r in layers if r.content), Shares())
        if code is not None:
            shares = shares + code.shares(in_layer=False)
        findings += rules.size_findings("code plus layers", total, shares)
    for ref in layers:
        if ref.runtimes and runtime not in ref.runtimes:
            findings.append(Finding(Severity.ERROR, "runtime-mismatch",
                                    f"layer {ref.label} is built for {', '.join(ref.runtimes)}, the function runs "
                                    f"{runtime}: build the layer for {runtime} (its compiled wheels are ABI-tagged)"))
        if ref.architectures and architecture not in ref.architectures:
            findings.append(Finding(Severity.ERROR, "architecture-mismatch",
                                    f"layer {ref.label} is built for {', '.join(ref.architectures)}, the function "
                                    f"is {architecture}: build the layer with architecture={architecture}"))
        elif ref.content and not (ref.runtimes or ref.architectures) and runtime in RUNTIMES:
            # A layer that declares no target is checked against the function's (a declared one, at the layer).
            findings += rules.native_code(f"layer {ref.label}", ref.content.sizes, ref.content.read_head,
                                          Target(runtime, architecture), f"rebuild it for {runtime} on {architecture}")
    if code is not None:
        findings += _escapes("the function's code", code)
    if code is not None and runtime in RUNTIMES:
        findings += rules.native_code("the function's code", code.sizes, code.read_head, Target(runtime, architecture),
                                      "list its package in the function's requirements.txt instead")
    findings += _shadowed(layers, sorted_by_cdk)
    findings += _version_clashes(code, layers)
    return findings


def _escapes(label: str, content: Content) -> list[Finding]:
    """Whatever of an asset names, or leads to, a file outside it: zip members that would land outside the
    folder they are extracted into, links of the folder it was staged from that the CDK followed."""
    return [*rules.unsafe_members(label, content.sizes), *content.link_findings(label)]


def _shadowed(layers: list[LayerRef], sorted_by_cdk: bool) -> list[Finding]:
    """Two layers that ship one module: the later one's copy is the one in /opt/python. With the recommended
    feature flag ``@aws-cdk/aws-lambda:recognizeLayerVersion`` a ``lambda.Function`` deploys its layers sorted by
    construct path, not in the order given, so which one is later is not what its code says."""
    findings = []
    seen: dict[str, str] = {}
    note = (" (this Function's layers deploy sorted by construct path, as @aws-cdk/aws-lambda:recognizeLayerVersion "
            "makes the CDK sort them; layerkit.PythonFunction keeps the order you give)") if sorted_by_cdk else ""
    for ref in layers:
        for name in sorted(ref.content.top_level_names if ref.content else ()):
            if name in seen and seen[name] != ref.label:
                findings.append(Finding(Severity.WARNING, "shadowed-module",
                                        f"layers {seen[name]} and {ref.label} both ship '{name}': the later one "
                                        f"({ref.label}) replaces the other's copy in /opt/python{note}; keep it "
                                        "in one"))
            seen[name] = ref.label
    return findings


def _version_clashes(code: Content | None, layers: list[LayerRef]) -> list[Finding]:
    """A distribution the function's code ships at another version than one of its layers: on Lambda
    ``/var/task`` comes before ``/opt``, so the function's copy wins and the layer's code runs against it."""
    if code is None:
        return []
    own = code.distributions(in_layer=False)
    findings = []
    for ref in layers:
        for name, version in sorted((ref.content.distributions(in_layer=True) if ref.content else {}).items()):
            if name in own and own[name] != version:
                findings.append(Finding(
                    Severity.WARNING, "version-clash",
                    f"the function ships {name} {own[name]} (its own dependencies, /var/task) and layer {ref.label} "
                    f"ships {name} {version} (/opt/python): /var/task comes first on Lambda, so the layer's code runs "
                    f"against {name} {own[name]}; use one version in both, or drop it from the function's "
                    "requirements"))
    return findings


def _asset_content(construct: IConstruct) -> Content | None:
    asset = construct.node.try_find_child("Code")
    if isinstance(asset, s3_assets.Asset):
        staging = asset.node.try_find_child("Stage")
        source = Path(staging.source_path) if isinstance(staging, AssetStaging) else None
        return Content(Path(Stage.of(construct).outdir) / asset.asset_path, source)
    return None


class _Targets(DefaultTokenResolver):
    """Resolves a function's layer list, replacing each reference by the construct it points at."""

    def __init__(self) -> None:
        super().__init__(StringConcat())

    def resolve_token(self, t: object, context: object, post_processor: object) -> object:
        if isinstance(t, Reference):
            return {"LayerkitTarget": t.target.node.path}
        return super().resolve_token(t, context, post_processor)  # type: ignore[arg-type]


class _App:
    """The app's layers and SSM parameters, found in one walk of the tree (each step is a call into Node.js)."""

    def __init__(self, root: IConstruct) -> None:
        self.constructs = root.node.find_all()
        self.layers: dict[str, LayerRef] = {}  # construct path of the CfnLayerVersion -> layer
        self.by_parameter_name: dict[str, LayerRef] = {}
        self.shared: list[tuple[Any, LayerRef]] = []  # (publication, the version it publishes)
        self.parameters: dict[str, CfnParameter] = {}  # construct path -> SSM-typed template parameter
        # The layer versions the kit's layer constructs publish: construct path -> (the layer, the version).
        self.versions: dict[str, tuple[Any, Any]] = {
            version.layer_version.node.path: (construct, version)
            for construct in self.constructs if isinstance(construct, LayerVersions) for version in construct.versions}
        from layerkit.external import ExternalPythonLayer

        # Layers owned elsewhere, by the SSM parameter or version ARN that names them.
        self.externals = {c.owned_elsewhere: c for c in self.constructs if isinstance(c, ExternalPythonLayer)}
        for construct in self.constructs:
            if isinstance(construct, CfnParameter):
                self.parameters[construct.node.path] = construct
            if not isinstance(construct, lambda_.LayerVersion):
                continue
            cfn = construct.node.default_child
            if not isinstance(cfn, lambda_.CfnLayerVersion):
                raise LayerkitError(f"{construct.node.path}: a LayerVersion without its CfnLayerVersion resource; "
                                    "layerkit cannot check it")
            owner, version = self.versions.get(construct.node.path, (None, None))
            ref = LayerRef(
                label=owner.name if owner else construct.node.path, construct=construct, shared=owner,
                runtimes=list(cfn.compatible_runtimes or []),
                architectures=list(cfn.compatible_architectures or []), content=_asset_content(construct),
            )
            self.layers[cfn.node.path] = ref
            if version is not None and version.publication is not None:
                self.by_parameter_name[version.publication.parameter_name] = ref
                self.shared.append((version.publication, ref))

    def layers_of(self, function: lambda_.Function) -> list[LayerRef]:
        """The function's layers in order, each found by the construct its reference points at."""
        cfn = function.node.default_child
        if not isinstance(cfn, lambda_.CfnFunction):
            raise LayerkitError(f"{function.node.path}: a Function without its CfnFunction resource; layerkit "
                                "cannot check it")
        by_export = {publication.export_name: ref for publication, ref in self.shared if publication.export_name}
        refs = []
        for entry in Tokenization.resolve(cfn.layers, scope=function, resolver=_Targets()) or []:
            target = entry.get("LayerkitTarget") if isinstance(entry, dict) else None
            imported = entry.get("Fn::ImportValue") if isinstance(entry, dict) else None
            if target in self.layers:
                refs.append(self.layers[target])
            elif target in self.parameters and self.parameters[target].default in self.by_parameter_name:
                refs.append(self.by_parameter_name[self.parameters[target].default])
            elif isinstance(imported, str) and imported in by_export:
                refs.append(by_export[imported])
            elif (external := self._external(entry, target)) is not None:
                refs.append(external)
            else:
                refs.append(LayerRef(label=str(entry)))  # a layer the kit knows nothing of: counted, not inspected
        return refs

    def _external(self, entry: Any, target: Any) -> LayerRef | None:
        """The layer owned elsewhere behind a function's layer reference (its SSM parameter, or its ARN)."""
        name = self.parameters[target].default if target in self.parameters else entry
        layer = self.externals.get(name) if isinstance(name, str) else None
        if layer is None:
            return None
        return LayerRef(label=layer.name, runtimes=list(layer.runtimes), architectures=list(layer.architectures),
                        owned_elsewhere=layer)


def findings_for_app(root: IConstruct) -> Iterator[tuple[IConstruct, Finding]]:
    """Every finding, with the construct it belongs to."""
    app = _App(root)
    for ref in app.layers.values():
        if ref.content is not None and ref.construct is not None:
            for finding in layer_findings(ref, ref.content):
                yield (ref.shared or ref.construct), finding
    for name, layer in app.externals.items():  # once each: what the synth cannot see of it
        yield layer, Finding(Severity.INFO, "owned-elsewhere",
                             f"layer {name} is owned elsewhere: its runtimes and architectures "
                             f"({', '.join(layer.runtimes)}; {', '.join(layer.architectures)}) are checked against "
                             "each function that uses it, its size and contents are not (they live in the app that "
                             "publishes it); layerkit invoke --layers-from OTHER_CDK_OUT runs it with the "
                             "function")
    for function in app.constructs:
        if isinstance(function, lambda_.Function):
            sorted_by_cdk = not _keeps_layer_order(function) and FeatureFlags.of(function).is_enabled(
                RECOGNIZE_LAYER_VERSION) is True
            for finding in function_findings(function.runtime.name, function.architecture.name,
                                             _asset_content(function), app.layers_of(function), sorted_by_cdk):
                yield function, finding


def _keeps_layer_order(function: lambda_.Function) -> bool:
    from layerkit.function import PythonFunction

    return isinstance(function, PythonFunction)


@jsii.implements(IAspect)
class LayerkitChecks:
    """Runs every check once, when the aspect visits the construct it was added to."""

    def __init__(self, root: Construct) -> None:
        self._root = root

    def visit(self, node: IConstruct) -> None:
        if node is not self._root:
            return
        for construct, finding in findings_for_app(node):
            text = f"[layerkit:{finding.rule}] {finding.message}"
            if finding.severity is Severity.ERROR:
                Annotations.of(construct).add_error(text)
            elif finding.severity is Severity.WARNING:
                Annotations.of(construct).add_warning_v2(f"layerkit:{finding.rule}", text)
            else:
                Annotations.of(construct).add_info(text)


def check(scope: Construct) -> None:
    """Check every layer and function under ``scope`` (usually the app) when it is synthesized."""
    Aspects.of(scope).add(LayerkitChecks(scope))
