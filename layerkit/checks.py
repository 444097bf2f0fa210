"""Guardrails for a whole app, applied at synth with one call: ``layerkit.check(app)``.

Each mistake becomes an error or a warning on the construct at fault (the CDK prints its path), in one
sentence that names the rule and the fix. ``cdk synth`` fails on errors, before anything is deployed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import jsii
from aws_cdk import Annotations, Aspects, CfnParameter, IAspect, Stack, Stage
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct, IConstruct

from layerkit.archive import asset_sizes
from layerkit.layer import SharedPythonLayer

MAX_LAYERS = 5
#: Lambda's limit for a function's code plus all its layers, unzipped (250 MB as Lambda counts: 262,144,000 B).
MAX_UNZIPPED_BYTES = 262_144_000
WARN_AT = 0.8
#: Above this a zip cannot be uploaded to Lambda directly; the CDK uploads through S3, which is fine.
DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024
ELF_MACHINES = {62: "x86_64", 183: "arm64"}


@dataclass(frozen=True)
class Finding:
    severity: str  # "error", "warning" or "info"
    rule: str
    message: str


class LayerContent:
    """What a layer (or function code) ships, read from its staged asset: a zip or a folder."""

    def __init__(self, asset: Path) -> None:
        self.asset = asset

    @cached_property
    def sizes(self) -> dict[str, int]:
        return asset_sizes(self.asset)

    @property
    def unzipped_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def zipped_bytes(self) -> int | None:
        return self.asset.stat().st_size if self.asset.is_file() else None

    def read_head(self, name: str, size: int = 20) -> bytes:
        if self.asset.is_file():
            with zipfile.ZipFile(self.asset) as archive, archive.open(name) as member:
                return member.read(size)
        with open(self.asset / name, "rb") as file:
            return file.read(size)

    @property
    def top_level_names(self) -> set[str]:
        """Importable names a layer puts at the top of ``/opt/python`` (modules and packages)."""
        names = set()
        for path in self.sizes:
            parts = path.split("/")
            if parts[0] != "python" or len(parts) < 2:
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

    def native_machines(self) -> dict[str, str]:
        """The architecture of each native library in the layer, from its ELF header."""
        machines = {}
        for path in self.sizes:
            if path.endswith(".so") or ".so." in path.rsplit("/", 1)[-1]:
                head = self.read_head(path)
                if head[:4] == b"\x7fELF" and len(head) >= 20:
                    order = "little" if head[5] == 1 else "big"
                    machines[path] = ELF_MACHINES.get(int.from_bytes(head[18:20], order), "other")
        return machines


@dataclass
class LayerRef:
    """A layer a function uses, and what is known of it (nothing for an external ARN)."""

    label: str
    construct: lambda_.LayerVersion | None = None
    shared: SharedPythonLayer | None = None
    runtimes: list[str] = field(default_factory=list)
    architectures: list[str] = field(default_factory=list)
    content: LayerContent | None = None


def layer_content_findings(label: str, content: LayerContent, shared: SharedPythonLayer | None) -> list[Finding]:
    findings = []
    paths = list(content.sizes)
    if not any(p.startswith("python/") for p in paths):
        stray = sorted(p for p in paths if p.endswith(".py"))[:3]
        where = f" (found {', '.join(stray)})" if stray else ""
        findings.append(Finding("error", "no-python-folder",
                                f"layer {label} has no python/ folder{where}: Lambda only puts /opt/python on "
                                "sys.path; move the modules into python/ at the root of the layer"))
    deep = sorted({nested for p in paths if (nested := _nested_python_folder(p))})
    if deep:
        findings.append(Finding("error", "module-too-deep",
                                f"layer {label} nests its modules one level too deep ({', '.join(deep[:3])}/...): "
                                "they will not import on Lambda; move their content up into python/"))
    if shared is not None:
        for folder in _packages_without_init(shared):
            findings.append(Finding(
                "warning", "missing-init",
                f"layer {label}: python/{folder}/ holds modules but no __init__.py, so it imports as a namespace "
                f"package that any other layer or the function's own {folder}/ folder silently merges into; "
                f"add an empty python/{folder}/__init__.py"))
    if content.zipped_bytes is not None and content.zipped_bytes > DIRECT_UPLOAD_BYTES:
        findings.append(Finding("info", "large-zip",
                                f"layer {label} is {content.zipped_bytes / 1e6:.0f} MB zipped, over Lambda's 50 MB "
                                "direct-upload limit: the CDK uploads it through S3, which is fine"))
    return findings


def _nested_python_folder(path: str) -> str | None:
    """``python/python`` or ``python/<pkg>/python`` when ``path`` sits in a python/ folder one level too deep."""
    parts = path.split("/")
    for depth in (1, 2):
        if len(parts) > depth + 1 and parts[0] == "python" and parts[depth] == "python":
            return "/".join(parts[: depth + 1])
    return None


def _packages_without_init(shared: SharedPythonLayer) -> list[str]:
    """Top-level folders of the layer's own code that hold modules but no ``__init__.py``."""
    contents: dict[str, set[str]] = {}
    for path in shared.source.files:
        rel = path.relative_to(shared.source.python_dir)
        if len(rel.parts) >= 2 and rel.parts[0] != "python":  # python/python/ is reported as too deep
            contents.setdefault(rel.parts[0], set()).add("/".join(rel.parts[1:]))
    return sorted(folder for folder, names in contents.items()
                  if "__init__.py" not in names and any(name.endswith(".py") for name in names))


def function_findings(
    runtime: str, architecture: str, code: LayerContent | None, layers: list[LayerRef]
) -> list[Finding]:
    findings = []
    if len(layers) > MAX_LAYERS:
        findings.append(Finding("error", "too-many-layers",
                                f"the function has {len(layers)} layers; Lambda allows {MAX_LAYERS}: merge layers "
                                "(e.g. put shared dependencies in one layer)"))
    total = (code.unzipped_bytes if code else 0) + sum(r.content.unzipped_bytes for r in layers if r.content)
    mb = total / 1024 / 1024
    if total > MAX_UNZIPPED_BYTES:
        findings.append(Finding("error", "too-large",
                                f"code plus layers is {mb:.0f} MB unzipped; Lambda allows 250 MB: drop unused "
                                "dependencies, or ship the function as a container image (10 GB)"))
    elif total > WARN_AT * MAX_UNZIPPED_BYTES:
        findings.append(Finding("warning", "nearly-too-large",
                                f"code plus layers is {mb:.0f} MB unzipped, over 80% of Lambda's 250 MB limit: "
                                "the next dependency may not fit; trim the layers"))
    for ref in layers:
        if ref.runtimes and runtime not in ref.runtimes:
            findings.append(Finding("error", "runtime-mismatch",
                                    f"layer {ref.label} is built for {', '.join(ref.runtimes)}, the function runs "
                                    f"{runtime}: build the layer for {runtime} (its compiled wheels are ABI-tagged)"))
        if ref.architectures and architecture not in ref.architectures:
            findings.append(Finding("error", "architecture-mismatch",
                                    f"layer {ref.label} is built for {', '.join(ref.architectures)}, the function "
                                    f"is {architecture}: build the layer with architecture={architecture}"))
        elif ref.content:
            wrong = sorted(p for p, m in ref.content.native_machines().items() if m != architecture)
            if wrong:
                findings.append(Finding("error", "architecture-mismatch",
                                        f"layer {ref.label} ships native code for another architecture than the "
                                        f"function's {architecture} ({wrong[0]}): rebuild it for {architecture}"))
    seen: dict[str, str] = {}
    for ref in layers:
        for name in sorted(ref.content.top_level_names if ref.content else ()):
            if name in seen and seen[name] != ref.label:
                findings.append(Finding("warning", "shadowed-module",
                                        f"layers {seen[name]} and {ref.label} both ship '{name}': the later one "
                                        f"({ref.label}) replaces the other's copy in /opt/python; keep it in one"))
            seen[name] = ref.label
    return findings


def _asset_content(construct: IConstruct) -> LayerContent | None:
    asset = construct.node.try_find_child("Code")
    if isinstance(asset, s3_assets.Asset):
        return LayerContent(Path(Stage.of(construct).outdir) / asset.asset_path)
    return None


def _layer_index(
    constructs: list[IConstruct],
) -> tuple[dict[tuple[str, str], LayerRef], dict[str, LayerRef]]:
    by_logical_id: dict[tuple[str, str], LayerRef] = {}
    by_parameter: dict[str, LayerRef] = {}
    for construct in constructs:
        if not isinstance(construct, lambda_.LayerVersion):
            continue
        stack = Stack.of(construct)
        cfn = construct.node.default_child
        assert isinstance(cfn, lambda_.CfnLayerVersion)
        shared = construct.node.scope if isinstance(construct.node.scope, SharedPythonLayer) else None
        ref = LayerRef(
            label=shared.name if shared else construct.node.path,
            construct=construct,
            shared=shared,
            runtimes=list(cfn.compatible_runtimes or []),
            architectures=list(cfn.compatible_architectures or []),
            content=_asset_content(construct),
        )
        by_logical_id[(stack.stack_name, stack.resolve(cfn.logical_id))] = ref
        if shared is not None:
            by_parameter[shared.publication.parameter_name] = ref
    return by_logical_id, by_parameter


def _function_layers(function: lambda_.Function, by_logical_id: dict[tuple[str, str], LayerRef],
                     by_parameter: dict[str, LayerRef], all_parameters: list[CfnParameter]) -> list[LayerRef]:
    stack = Stack.of(function)
    cfn = function.node.default_child
    assert isinstance(cfn, lambda_.CfnFunction)
    parameters = {stack.resolve(p.logical_id): p for p in all_parameters if Stack.of(p) is stack}
    refs = []
    for entry in stack.resolve(cfn.layers) or []:
        target = entry.get("Ref") if isinstance(entry, dict) else None
        if target in parameters and parameters[target].default in by_parameter:
            refs.append(by_parameter[parameters[target].default])
        elif (stack.stack_name, target) in by_logical_id:
            refs.append(by_logical_id[(stack.stack_name, target)])
        elif matches := [ref for (_, lid), ref in by_logical_id.items() if lid == target]:
            refs.append(matches[0])  # another stack's layer, referenced before the CDK adds the export
        else:
            refs.append(LayerRef(label=str(entry)))  # an external layer: counted, not inspected
    return refs


def findings_for_app(root: IConstruct) -> Iterator[tuple[IConstruct, Finding]]:
    """Every finding, with the construct it belongs to."""
    constructs = root.node.find_all()  # one walk of the tree: each step of it is a call into Node.js
    by_logical_id, by_parameter = _layer_index(constructs)
    parameters = [c for c in constructs if isinstance(c, CfnParameter)]
    for ref in by_logical_id.values():
        if ref.content is not None and ref.construct is not None:
            for finding in layer_content_findings(ref.label, ref.content, ref.shared):
                yield (ref.shared or ref.construct), finding
    for function in constructs:
        if isinstance(function, lambda_.Function):
            layers = _function_layers(function, by_logical_id, by_parameter, parameters)
            for finding in function_findings(function.runtime.name, function.architecture.name,
                                             _asset_content(function), layers):
                yield function, finding


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
            if finding.severity == "error":
                Annotations.of(construct).add_error(text)
            elif finding.severity == "warning":
                Annotations.of(construct).add_warning_v2(f"layerkit:{finding.rule}", text)
            else:
                Annotations.of(construct).add_info(text)


def check(scope: Construct) -> None:
    """Check every layer and function under ``scope`` (usually the app) when it is synthesized."""
    Aspects.of(scope).add(LayerkitChecks(scope))
