"""The guardrails applied to what a layer and a function ship, read from their assets (a zip, or a folder the CDK CLI
zips): the same rules at synth (:mod:`layerkit.checks.app`, on the construct tree) and on a synthesized assembly
(``layerkit check``, :func:`assembly_findings`). Nothing here needs the CDK, so the command starts in a blink.
"""

from __future__ import annotations

from layerkit.assembly import Assembly
from layerkit.checks.shipped import Content, LayerRef
from layerkit.core.targets import RUNTIMES, Target
from layerkit.installed.layer_paths import runtime_of
from layerkit.rules import content as rules
from layerkit.rules.findings import Finding, Severity
from layerkit.rules.limits import DIRECT_UPLOAD_BYTES, MAX_LAYERS, MAX_UNZIPPED_BYTES
from layerkit.rules.size import WARN_AT, Shares, size_findings


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
        relevant = [p for p in content.sizes if runtime_of(p) in (None, target.runtime)]
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
    if total > WARN_AT * MAX_UNZIPPED_BYTES:  # measured only then: it reads the compiled files
        shares = sum((r.content.shares(in_layer=True) for r in layers if r.content), Shares())
        if code is not None:
            shares = shares + code.shares(in_layer=False)
        findings += size_findings("code plus layers", total, shares)
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
    return [*rules.unsafe_members(label, content.sizes), *rules.duplicate_members(label, content.content.duplicates),
            *content.link_findings(label)]


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


def assembly_findings(assembly: Assembly) -> list[tuple[str, Finding]]:
    """``(construct path, finding)`` for every layer and function of a synthesized ``assembly``: what
    ``layerkit.check`` reports at synth, but the findings about the source folders (which the assembly does not
    hold) and the CDK's reordering of layers."""
    found: list[tuple[str, Finding]] = []
    refs: dict[str, LayerRef] = {}
    for layer in assembly.layers():
        if layer.asset is None:
            continue
        ref = LayerRef(layer.name, runtimes=list(layer.runtimes), architectures=list(layer.architectures),
                       content=Content(layer.asset, what=f"layer {layer.id}"))
        refs[layer.id] = ref
        found += [(layer.id, finding) for finding in layer_findings(ref, ref.content)]  # type: ignore[arg-type]
    for function in assembly.functions():
        layers = [refs.get(use.layer.id) or LayerRef(use.layer.name) for use in function.layers]
        found += [(function.id, finding) for finding in
                  function_findings(function.runtime, function.architecture,
                                    Content(function.code, what=f"function {function.id}"), layers)]
    return found
