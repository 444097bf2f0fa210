"""Compare the deployed assembly with the next one: which layers get a new version, who moves to it, and
which CloudFormation exports the update would break.

CloudFormation refuses to change or remove an export while another stack imports it ("Export ... cannot be
updated as it is in use by ..."). A layer version is immutable: any change replaces it and changes its ARN,
so a layer shared through an export locks on its first change (aws-cdk issue 1972). This check finds that
before ``cdk deploy`` does, from the two synthesized templates alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from layerkit.assembly.cloud_assembly import Assembly, Stack, export_name
from layerkit.core.errors import LayerkitError
from layerkit.rules.findings import Severity

LAYER_TYPE = "AWS::Lambda::LayerVersion"


class ChangeKind(StrEnum):
    """What a deploy does to a layer."""

    NEW_VERSION = "new version"
    ADDED = "added"
    REMOVED = "removed"


@dataclass
class LayerChange:
    layer: str
    name: str
    stack: str
    change: ChangeKind
    asset_before: str = ""
    asset_after: str = ""
    functions: list[dict[str, str]] = field(default_factory=list)


@dataclass
class FunctionChange:
    """A function whose code (its own files and dependencies) is a new asset: its next deploy updates it,
    without any layer getting a new version."""

    function: str
    stack: str
    asset_before: str
    asset_after: str


@dataclass
class ExportLock:
    export: str
    producer: str
    consumers: list[str]
    reason: str
    severity: Severity  # error: the deploy fails; warning: it fails if the update replaces the resource

    @property
    def fix(self) -> str:
        return (
            "share the value without an export: for a layer, SSM sharing (layerkit:sharing=ssm, the default); "
            "otherwise deploy in two passes: first keep the old export beside the new value "
            "(Stack.export_value) and move the consumers, then remove it"
        )


@dataclass
class UpgradeReport:
    layers: list[LayerChange]
    locks: list[ExportLock]
    functions: list[FunctionChange] = field(default_factory=list)
    elsewhere: dict[str, list[str]] = field(default_factory=dict)  # layer owned elsewhere -> functions using it

    @property
    def blocked(self) -> bool:
        return any(lock.severity is Severity.ERROR for lock in self.locks)

    def to_json(self) -> dict[str, Any]:
        return {
            "blocked": self.blocked,
            "layers": [asdict(change) for change in self.layers],
            "functions": [asdict(change) for change in self.functions],
            "export_locks": [{**asdict(lock), "fix": lock.fix} for lock in self.locks],
            "owned_elsewhere": self.elsewhere,
        }


def _resource_refs(value: Any) -> set[str]:
    """Logical IDs a template expression depends on (Ref, Fn::GetAtt, ${} in Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found.add(target)
            else:
                found |= _resource_refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _resource_refs(inner)
    return found


def _importers(assembly: Assembly, export_name: str) -> list[str]:
    needle = json.dumps({"Fn::ImportValue": export_name})
    return sorted(
        stack.name for stack in assembly.stacks.values()
        if needle in json.dumps(stack.template.get("Resources", {}), sort_keys=True)
        or needle in json.dumps(stack.template.get("Outputs", {}), sort_keys=True)
    )


def _changed(before: Stack, after: Stack | None, logical_id: str) -> bool:
    if after is None or logical_id not in after.resources:
        return True
    old, new = before.resources.get(logical_id, {}), after.resources[logical_id]
    return (old.get("Type"), old.get("Properties")) != (new.get("Type"), new.get("Properties"))


def _export_locks(before: Assembly, after: Assembly) -> list[ExportLock]:
    locks = []
    after_exports = {export_name(output): value for _, output, value in after.exports()}
    for producer, output, value in before.exports():
        name = export_name(output)
        consumers = [c for c in _importers(before, name) if c != producer.name]
        if not isinstance(name, str) or not consumers:
            continue  # an export nobody imports can change freely
        if name not in after_exports:
            locks.append(ExportLock(name, producer.name, consumers, "the export disappears", Severity.ERROR))
            continue
        if json.dumps(after_exports[name], sort_keys=True) != json.dumps(value, sort_keys=True):
            locks.append(ExportLock(name, producer.name, consumers, "its value expression changes", Severity.ERROR))
            continue
        for logical_id in sorted(_resource_refs(value)):
            if not _changed(producer, after.stacks.get(producer.name), logical_id):
                continue
            resource_type = producer.resources.get(logical_id, {}).get("Type")
            if resource_type == LAYER_TYPE:
                reason = f"layer version {logical_id} is replaced (a changed layer is a new version, a new ARN)"
                locks.append(ExportLock(name, producer.name, consumers, reason, Severity.ERROR))
            else:
                reason = f"{resource_type} {logical_id} changes; its value changes if the update replaces it"
                locks.append(ExportLock(name, producer.name, consumers, reason, Severity.WARNING))
    return locks


def _layer_changes(before: Assembly, after: Assembly) -> list[LayerChange]:
    old = {layer.path: layer for layer in before.layers()}
    new = {layer.path: layer for layer in after.layers()}
    users: dict[str, list[dict[str, str]]] = {}
    for function in after.functions():
        for use in function.layers:
            users.setdefault(use.layer.path, []).append({"function": function.id, "via": use.via})
    changes = []
    for path, layer in new.items():
        previous = old.get(path)
        if layer.owned_elsewhere:
            continue
        if previous is None:
            changes.append(LayerChange(path, layer.name, layer.stack, ChangeKind.ADDED, "", layer.s3_key,
                                       users.get(path, [])))
            continue
        stack_before = before.stacks[previous.stack]
        if _changed(stack_before, after.stacks.get(layer.stack), previous.logical_id):
            changes.append(LayerChange(path, layer.name, layer.stack, ChangeKind.NEW_VERSION, previous.s3_key,
                                       layer.s3_key, users.get(path, [])))
    for path, layer in old.items():
        if path not in new:
            changes.append(LayerChange(path, layer.name, layer.stack, ChangeKind.REMOVED, layer.s3_key, ""))
    return changes


def _function_changes(before: Assembly, after: Assembly) -> list[FunctionChange]:
    old = {fn.id: fn for fn in before.functions()}
    return [
        FunctionChange(fn.id, fn.stack, old[fn.id].code_s3_key, fn.code_s3_key)
        for fn in after.functions()
        if fn.id in old and old[fn.id].code_s3_key != fn.code_s3_key and fn.code_s3_key
    ]


def deployed_assembly(after: Assembly) -> Assembly:
    """The templates CloudFormation holds for ``after``'s stacks; needs boto3 and AWS credentials."""
    try:
        # lazy: boto3 is optional: only --against-deployed reads CloudFormation
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise LayerkitError(
            "--against-deployed reads the deployed templates with boto3, which is not installed: "
            "'pip install boto3', or compare two synthesized assemblies (check-upgrade BEFORE AFTER)"
        ) from None
    templates = {}
    try:
        # The region as the AWS CLI and the SDKs for other languages read it too (boto3 reads AWS_DEFAULT_REGION).
        client = boto3.client("cloudformation", region_name=os.environ.get("AWS_REGION") or None)
        for name in after.stacks:
            try:
                body = client.get_template(StackName=name, TemplateStage="Original")["TemplateBody"]
            except ClientError as exc:
                if "does not exist" in str(exc):
                    continue  # not deployed yet: nothing to lock
                raise
            templates[name] = body if isinstance(body, dict) else json.loads(body)
    except (BotoCoreError, ClientError) as exc:
        raise LayerkitError(
            f"cannot read the deployed templates ({exc}); configure AWS credentials and a region, or compare "
            "two synthesized assemblies (check-upgrade BEFORE AFTER)"
        ) from None
    return Assembly.from_templates("deployed stacks", templates)


def check_upgrade(before: Assembly, after: Assembly) -> UpgradeReport:
    """What deploying ``after`` over ``before`` (as deployed) does to layers and cross-stack exports."""
    elsewhere: dict[str, list[str]] = {}
    for function in after.functions():
        for use in function.layers:
            if use.layer.owned_elsewhere:
                elsewhere.setdefault(use.layer.owned_elsewhere, []).append(function.id)
    return UpgradeReport(layers=_layer_changes(before, after), locks=_export_locks(before, after),
                         functions=_function_changes(before, after), elsewhere=elsewhere)


def render(report: UpgradeReport) -> str:
    lines = []
    if not report.layers:
        lines.append("No layer gets a new version: every layer's content is unchanged.")
    for change in report.layers:
        if change.change is ChangeKind.NEW_VERSION:
            lines.append(f"Layer {change.name} ({change.layer}) gets a new version: asset "
                         f"{change.asset_before[:12]} -> {change.asset_after[:12]}.")
        else:
            lines.append(f"Layer {change.name} ({change.layer}) is {change.change}.")
        for user in change.functions:
            lines.append(f"  function {user['function']} moves to it (via {user['via']})")
    for change in report.functions:
        lines.append(f"Function {change.function} gets new code (its own files or dependencies): asset "
                     f"{change.asset_before[:12]} -> {change.asset_after[:12]}.")
    for lock in report.locks:
        label = "BLOCKED" if lock.severity is Severity.ERROR else "warning"
        lines.append(
            f"{label}: export {lock.export} of stack {lock.producer} is imported by {', '.join(lock.consumers)} "
            f"and {lock.reason}: CloudFormation would stop the deploy with \"Export {lock.export} cannot be "
            f"updated as it is in use by {lock.consumers[0]}\". Fix: {lock.fix}."
        )
    for name, functions in report.elsewhere.items():
        lines.append(f"Layer {name} is owned elsewhere: its versions are published by another app; "
                     f"{', '.join(functions)} use the version it names at their deploy.")
    if not report.locks:
        lines.append("No export that another stack imports changes: the update deploys in one pass.")
    return "\n".join(lines)
