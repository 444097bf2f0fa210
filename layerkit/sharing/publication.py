"""How a layer owned by one stack reaches functions in other stacks.

``ssm`` (the default): the owner writes the layer version ARN to an SSM parameter with a stable name; each
consumer reads it at deploy time through an ``AWS::SSM::Parameter::Value<String>`` template parameter. No
CloudFormation export ties the stacks, so a new layer version never meets "Export ... cannot be updated as it
is in use by ...", and the CDK CLI never skips a stack that has such a parameter, so ``cdk deploy --all`` moves
every consumer to the new version in the same pass.

``export``: a CloudFormation export of the owner stack, imported by each consumer (``Fn::ImportValue``), made
explicitly so that it stays an export whatever ``@aws-cdk/core:defaultCrossStackReferences`` says. Simple, but
the export is locked while another stack imports it: a changed layer then fails to deploy (aws-cdk issue 1972).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from layerkit.core.choices import one_of
from layerkit.core.errors import LayerkitError

SHARING_CONTEXT_KEY = "layerkit:sharing"

#: Layer versions handed out by a publication -> the construct that publishes them (kept alive with them).
_ORIGINS: dict[int, tuple[lambda_.ILayerVersion, Construct]] = {}


def shared_layer_of(layer_version: lambda_.ILayerVersion) -> Any:
    """The :class:`~layerkit.constructs.layer.SharedPythonLayer` behind a layer version that ``for_stack``
    returned, or None."""
    found = _ORIGINS.get(id(layer_version))
    return found[1] if found and found[0] is layer_version else None


class Sharing(StrEnum):
    """How consumers in other stacks reference a layer version."""

    SSM = "ssm"
    EXPORT = "export"


def resolve_sharing(scope: Construct, explicit: Sharing | str | None) -> Sharing:
    """The explicit choice, else the ``layerkit:sharing`` context key, else ``ssm``."""
    return one_of(Sharing, explicit or scope.node.try_get_context(SHARING_CONTEXT_KEY) or Sharing.SSM,
                  where=scope.node.path, argument="sharing", context_key=SHARING_CONTEXT_KEY)


def parameter_name(owner_stack_name: str, layer_name: str, variant: str | None = None) -> str:
    """The documented SSM parameter that holds a layer's current version ARN: ``/<owner stack>/layers/<layer>/arn``,
    or ``/<owner stack>/layers/<layer>/<x86_64|arm64>/arn`` for each version of a layer built for several
    architectures (a character SSM does not accept in a name, such as a space in the folder's name, becomes
    ``-``)."""
    middle = f"{layer_name}/{variant}" if variant else layer_name
    return re.sub(r"[^A-Za-z0-9._/-]", "-", f"/{owner_stack_name}/layers/{middle}/arn")


def claim_parameter(owner: Construct, name: str) -> None:
    """Record that ``owner`` writes SSM parameter ``name``, or refuse: two writers in one app would overwrite
    each other's layer version."""
    written = owner.node.root.__dict__.setdefault("_layerkit_ssm_parameters", {})
    if (other := written.setdefault(name, owner.node.path)) != owner.node.path:
        raise LayerkitError(
            f"{owner.node.path}: {other} already publishes its layer version in SSM parameter {name} (the default "
            "name comes from the folder's name); give one of them parameter_name='/.../arn'"
        )


class LayerPublication:
    """Publishes one layer version from its owner stack and hands it to consumer stacks."""

    def __init__(
        self, owner: Construct, layer_version: lambda_.ILayerVersion, layer_name: str, sharing: Sharing,
        name: str | None = None, construct_id: str = "VersionArn",
    ) -> None:
        self.owner = owner
        self._suffix = construct_id.removeprefix("VersionArn")  # one publication per version of the layer
        self.layer_version = layer_version
        self.sharing = sharing
        self.parameter_name = name or parameter_name(Stack.of(owner).stack_name, layer_name)
        self._imports: dict[str, lambda_.ILayerVersion] = {}
        self.export_name: str | None = None  # with export sharing, once a consumer imports it
        if sharing is Sharing.SSM:
            claim_parameter(owner, self.parameter_name)
            ssm.StringParameter(
                owner, construct_id,
                parameter_name=self.parameter_name,
                string_value=layer_version.layer_version_arn,
                description=f"Current version ARN of layer {layer_name}; read by the stacks that use it.",
            )

    def for_scope(self, consumer: Construct) -> lambda_.ILayerVersion:
        """The layer version as ``consumer`` (any construct) must reference it."""
        consumer_stack = Stack.of(consumer)
        owner_stack = Stack.of(self.owner)
        if consumer_stack is owner_stack:
            version = self.layer_version  # same stack: a plain Ref
        else:
            key = consumer_stack.node.path
            if key not in self._imports:
                if self.sharing is Sharing.EXPORT:
                    consumer_stack.add_stack_dependency(owner_stack, "imports a layer version ARN it exports")
                    arn = owner_stack.export_value(self.layer_version.layer_version_arn)
                    self.export_name = owner_stack.resolve(arn)["Fn::ImportValue"]
                else:
                    consumer_stack.add_stack_dependency(owner_stack, "reads a layer version ARN it publishes in SSM")
                    arn = ssm.StringParameter.value_for_string_parameter(consumer_stack, self.parameter_name)
                import_id = f"Layer{self.owner.node.addr[:12]}{self._suffix}"
                self._imports[key] = lambda_.LayerVersion.from_layer_version_arn(consumer_stack, import_id, arn)
            version = self._imports[key]
        _ORIGINS[id(version)] = (version, self.owner)
        return version
