"""A template of one stack that ``sam local invoke`` runs with its functions' layers, whichever sharing mode.

``sam local invoke -t cdk.out/<stack>.template.json`` cannot use a layer another stack owns: with the kit's
default SSM sharing it takes the parameter's default (the parameter's name) as a layer ARN and stops; with export
sharing it drops the layers without a word, and the function fails with ``ImportModuleError``. SAM does mount a
layer whose ``AWS::Lambda::LayerVersion`` is in the same template, from its ``aws:asset:path``.

So :func:`sam_template` copies each layer version the stack's functions reference from another stack (by SSM
parameter, export, or the CDK's stack output) into the stack's template, with its asset's path, and replaces the
reference by a ``Ref`` to the copy; SSM parameters that only named those layers go. Every asset path is written
relative to where the template is written, so the file works where it lies. It is a file for local runs: never
deploy it (the deployed template shares the layers as the app says).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from layerkit.assembly import Assembly, Layer
from layerkit.core.errors import AssemblyError

FUNCTION = "AWS::Lambda::Function"
LAYER = "AWS::Lambda::LayerVersion"


def _copy_id(layer: Layer, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9]", "", f"{layer.stack.title()}{layer.logical_id}")[:230] or "Layer"
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}{number}"
    taken.add(name)
    return name


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def sam_template(assembly: Assembly, stack_name: str, base: Path) -> dict[str, Any]:
    """The template of ``stack_name`` for ``sam local invoke``, its asset paths relative to ``base`` (the folder the
    template is written to)."""
    stack = assembly.stacks.get(stack_name)
    if stack is None:
        known = ", ".join(assembly.stacks) or "none"
        raise AssemblyError(f"no stack {stack_name!r} in {assembly.directory}; its stacks: {known}")
    template = copy.deepcopy(stack.template)
    resources: dict[str, Any] = template.setdefault("Resources", {})
    parameters: dict[str, Any] = template.get("Parameters", {})
    functions = {fn.logical_id: fn for fn in assembly.functions() if fn.stack == stack_name}
    copies: dict[str, str] = {}  # layer construct path -> logical id of its copy here
    used_parameters: set[str] = set()
    taken = set(resources)
    for logical_id, function in functions.items():
        resource = resources[logical_id]
        properties = resource.setdefault("Properties", {})
        references = properties.get("Layers", [])
        new_references = []
        for reference, use in zip(references, function.layers, strict=True):
            layer = use.layer
            if use.via == "ref" or layer.asset is None:  # the stack's own, or owned elsewhere: kept as it is
                new_references.append(reference)
                continue
            if layer.path not in copies:
                owner = assembly.stacks[layer.stack].resources[layer.logical_id]
                layer_copy = copy.deepcopy(owner)
                layer_copy.pop("DeletionPolicy", None)
                layer_copy.pop("UpdateReplacePolicy", None)
                metadata = layer_copy.setdefault("Metadata", {})
                metadata.update({"aws:asset:path": _relative(layer.asset, base), "aws:asset:property": "Content",
                                 "layerkit:copied-from": f"{layer.stack}/{layer.logical_id}"})
                copies[layer.path] = _copy_id(layer, taken)
                resources[copies[layer.path]] = layer_copy
            if isinstance(reference, dict) and "Ref" in reference:
                used_parameters.add(reference["Ref"])
            new_references.append({"Ref": copies[layer.path]})
        if references:
            properties["Layers"] = new_references
        resource.setdefault("Metadata", {})["aws:asset:path"] = _relative(function.code, base)
        resource["Metadata"].setdefault("aws:asset:property", "Code")
    for logical_id, resource in resources.items():  # the stack's own layers: paths relative to the new place
        path = resource.get("Metadata", {}).get("aws:asset:path")
        if resource.get("Type") == LAYER and path and logical_id not in copies.values():
            resource["Metadata"]["aws:asset:path"] = _relative(assembly.directory / path, base)
    for name in used_parameters:  # a layer's SSM parameter, now a Ref to its copy
        if not _referenced(template, name):
            parameters.pop(name, None)
    return template


def _referenced(value: Any, name: str) -> bool:
    if isinstance(value, dict):
        return value.get("Ref") == name or any(_referenced(v, name) for k, v in value.items() if k != "Parameters")
    if isinstance(value, list):
        return any(_referenced(v, name) for v in value)
    return False
