"""Layers owned elsewhere: published by another app, often from another account, and used here.

Organisations publish shared layers from one app and consume them from many. A consumer only knows the SSM
parameter that holds the current version ARN (:meth:`ExternalPythonLayer.from_parameter`, the way the kit's own
``ssm`` sharing publishes) or a version ARN (:meth:`ExternalPythonLayer.from_layer_version_arn`). It says what the
layer is built for, so that ``layerkit.check`` checks every function that uses it against that target; what it
cannot check (the layer's size and contents live in the other app) it says once. ``describe`` and
``check-upgrade`` list such a layer as owned elsewhere, and ``layerkit invoke`` fetches it
(:mod:`layerkit.invoke.remote`).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from layerkit.core.errors import LayerkitError
from layerkit.core.targets import Target, Variant, python_runtime, targets_of

METADATA = "layerkit:external-layer"


class ExternalPythonLayer(Construct):
    """A layer version published elsewhere, and the runtimes and architectures it is built for.

    Example::

        shared = SharedPythonLayer.from_parameter(self, "Common", "/platform/layers/common/arn",
                                                  runtime=lambda_.Runtime.PYTHON_3_12)
        PythonFunction(self, "Fn", entry="lambdas/fn", runtime=lambda_.Runtime.PYTHON_3_12, layers=[shared])
    """

    def __init__(self, scope: Construct, construct_id: str, *, parameter_name: str | None = None,
                 layer_version_arn: str | None = None, runtimes: Sequence[lambda_.Runtime],
                 architectures: Sequence[lambda_.Architecture] = (lambda_.Architecture.X86_64,)) -> None:
        super().__init__(scope, construct_id)
        if (parameter_name is None) == (layer_version_arn is None):
            raise LayerkitError(f"{self.node.path}: give the layer's parameter_name or its layer_version_arn")
        self.parameter_name = parameter_name
        self.layer_version_arn = layer_version_arn
        self.runtimes = [r.name for r in runtimes]
        self.architectures = [a.name for a in architectures]
        targets_of(self.runtimes, self.architectures)  # checked: the kit's runtimes and Lambda's architectures
        self.variant = Variant(tuple(self.architectures), tuple(self.runtimes))
        self._imports: dict[str, lambda_.ILayerVersion] = {}
        self.node.add_metadata(METADATA, {"parameter_name": parameter_name, "layer_version_arn": layer_version_arn,
                                          "runtimes": self.runtimes, "architectures": self.architectures})

    @property
    def name(self) -> str:
        return self.parameter_name or self.layer_version_arn or self.node.id

    @property
    def owned_elsewhere(self) -> str:
        """The SSM parameter or version ARN that names it."""
        return self.name

    @classmethod
    def from_parameter(cls, scope: Construct, construct_id: str, parameter_name: str, *,
                       runtime: lambda_.Runtime | None = None, architecture: lambda_.Architecture | None = None,
                       runtimes: Sequence[lambda_.Runtime] | None = None,
                       architectures: Sequence[lambda_.Architecture] | None = None) -> ExternalPythonLayer:
        """The layer whose current version ARN another app writes to ``parameter_name`` (resolved at deploy time,
        so a new version there moves this app's functions at their next deploy)."""
        return cls(scope, construct_id, parameter_name=parameter_name, **_targets(runtime, architecture, runtimes,
                                                                                 architectures))

    @classmethod
    def from_layer_version_arn(cls, scope: Construct, construct_id: str, layer_version_arn: str, *,
                               runtime: lambda_.Runtime | None = None,
                               architecture: lambda_.Architecture | None = None,
                               runtimes: Sequence[lambda_.Runtime] | None = None,
                               architectures: Sequence[lambda_.Architecture] | None = None) -> ExternalPythonLayer:
        """The layer version ``layer_version_arn`` (``arn:aws:lambda:<region>:<account>:layer:<name>:<version>``)."""
        return cls(scope, construct_id, layer_version_arn=layer_version_arn,
                   **_targets(runtime, architecture, runtimes, architectures))

    def version_for(self, scope: Construct, target: Target | None = None) -> lambda_.ILayerVersion:
        """The layer version as a function of ``target`` in ``scope``'s stack references it."""
        if target is not None and not self.variant.serves(target):
            raise LayerkitError(f"{self.node.path}: the layer owned elsewhere ({self.name}) is built for "
                                f"{', '.join(self.runtimes)} on {', '.join(self.architectures)}, not for {target}; "
                                "use the layer published for that target")
        stack = Stack.of(scope)
        key = stack.node.path
        if key not in self._imports:
            arn = self.layer_version_arn or ssm.StringParameter.value_for_string_parameter(stack, self.parameter_name)
            self._imports[key] = lambda_.LayerVersion.from_layer_version_attributes(
                stack, f"External{self.node.addr[:12]}", layer_version_arn=arn,
                compatible_runtimes=[python_runtime(r) for r in self.runtimes])
        return self._imports[key]

    def packages_for(self, target: Target) -> dict[str, str]:
        """Unknown here: its distributions live in the other app (functions install what they declare)."""
        del target
        return {}


def _targets(runtime: lambda_.Runtime | None, architecture: lambda_.Architecture | None,
             runtimes: Sequence[lambda_.Runtime] | None,
             architectures: Sequence[lambda_.Architecture] | None) -> dict[str, list]:
    if (runtime is None) == (runtimes is None):
        raise LayerkitError("say what the layer is built for: runtime=lambda_.Runtime.PYTHON_3_12 (or runtimes=[...])")
    chosen_architectures = [architecture] if architecture is not None else list(architectures or []) or \
        [lambda_.Architecture.X86_64]
    return {"runtimes": [runtime] if runtime is not None else list(runtimes or []),
            "architectures": chosen_architectures}
