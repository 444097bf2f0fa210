"""Guardrails for a whole app, applied at synth with one call: ``layerkit.check(app)``.

Each mistake becomes an error or a warning on the construct at fault (the CDK prints its path), in one
sentence that names the rule and the fix. ``cdk synth`` fails on errors, before anything is deployed. The
content rules are :mod:`layerkit.rules.content`, the ones ``layerkit build`` applies too; this module finds what each
function runs (its code and its layers, resolved by construct, across stacks) and applies them.
"""

from __future__ import annotations

from collections.abc import Iterator
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

from layerkit.checks.guardrails import Content, LayerRef, function_findings, layer_findings
from layerkit.constructs.external import ExternalPythonLayer
from layerkit.constructs.layer import LayerVersions
from layerkit.core.errors import LayerkitError
from layerkit.rules.findings import Finding, Severity, annotation_id

RECOGNIZE_LAYER_VERSION = "@aws-cdk/aws-lambda:recognizeLayerVersion"


def _asset_content(construct: IConstruct) -> Content | None:
    asset = construct.node.try_find_child("Code")
    if isinstance(asset, s3_assets.Asset):
        staging = asset.node.try_find_child("Stage")
        source = Path(staging.source_path) if isinstance(staging, AssetStaging) else None
        return Content(Path(Stage.of(construct).outdir) / asset.asset_path, source, what=construct.node.path)
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
        if _broken(ref.shared):
            continue  # its own error says what is wrong (constructs/mistakes.py): nothing of it was built
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
        if isinstance(function, lambda_.Function) and not _broken(function):
            layers = app.layers_of(function)
            if any(_broken(ref.shared) for ref in layers):
                continue  # its layer's error is the mistake to fix first
            sorted_by_cdk = not _keeps_layer_order(function) and FeatureFlags.of(function).is_enabled(
                RECOGNIZE_LAYER_VERSION) is True
            for finding in function_findings(function.runtime.name, function.architecture.name,
                                             _asset_content(function), layers, sorted_by_cdk):
                yield function, finding


def _broken(construct: object) -> bool:
    """Whether a kit construct could not be built (its error annotation says why)."""
    return bool(getattr(construct, "broken", False))


def _keeps_layer_order(function: lambda_.Function) -> bool:
    return bool(getattr(function, "keeps_layer_order", False))


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
                Annotations.of(construct).add_warning_v2(annotation_id(finding.rule), text)
            else:
                Annotations.of(construct).add_info(text)


def check(scope: Construct) -> None:
    """Check every layer and function under ``scope`` (usually the app) when it is synthesized."""
    Aspects.of(scope).add(LayerkitChecks(scope))
