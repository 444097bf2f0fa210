"""The layer versions a layer construct publishes, and the one a function gets: one home for the kit's own
``SharedPythonLayer`` and the alpha's ``PythonLayerVersion``, which differ only in where their versions sit in the
construct tree and how they are named.

A layer of one target publishes one version; a layer of several runtimes and architectures one per architecture
(or one for all: :mod:`layerkit.assemble.matrix`). Each version is referenced from other stacks as its sharing says
(:mod:`.publication`), under an SSM parameter of its own: ``/x/arn`` for the only version, ``/x/<variant>/arn`` for
each of several.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layerkit.core.errors import LayerkitError
from layerkit.core.targets import Target, Variant
from layerkit.sharing.publication import LayerPublication, Sharing, claim_parameter, parameter_name
from layerkit.sources import SourceFolder


@dataclass
class BuiltVersion:
    """The code of one version, as a builder made it: what it serves, its code and asset, what it ships."""

    variant: Variant
    code: lambda_.Code
    asset_hash: str
    content: Path  # the zip (or the Docker bundle's folder) that is uploaded
    packages: dict[str, dict[str, str]] = field(default_factory=dict)  # runtime -> distribution -> version


@dataclass
class PublishedVersion:
    """One layer version a layer publishes, and the targets it serves."""

    layer_version: lambda_.LayerVersion
    variant: Variant
    asset_hash: str
    content: Path  # the zip (or the Docker bundle's folder) that is uploaded
    packages: dict[str, dict[str, str]] = field(default_factory=dict)  # runtime -> distribution -> version
    publication: LayerPublication | None = None  # how other stacks reference it (None: the CDK's own way)


def versioned_parameter_name(name: str, key: str | None) -> str:
    """``name`` (``/x/arn``) for the only version of a layer, ``/x/<key>/arn`` for each of several."""
    return name if key is None else f"{name.removesuffix('/arn')}/{key}/arn"


def publish(owner: Construct, layer_name: str, built: Sequence[BuiltVersion], *,
            version_of: Callable[[int, BuiltVersion, str], lambda_.LayerVersion], sharing: Sharing | None,
            parameter: str | None) -> list[PublishedVersion]:
    """Publish each of ``built`` as a layer version (``version_of(number, version, suffix)`` makes it, ``suffix``
    naming all but the only one: ``X8664``, ``Arm64``, ``All``), referenced from other stacks as ``sharing`` says
    (None: the CDK's own references), in the SSM parameter ``parameter`` (default: the kit's name for
    ``layer_name`` in the owner's stack), one per version."""
    keys = [version.variant.key if len(built) > 1 else None for version in built]
    names = [versioned_parameter_name(parameter, key) if parameter else
             parameter_name(Stack.of(owner).stack_name, layer_name, key) for key in keys]
    if sharing is Sharing.SSM:
        for name in names:  # before any construct is made: a refused layer leaves nothing half-published
            claim_parameter(owner, name)
    published = []
    for number, (version, key, name) in enumerate(zip(built, keys, names, strict=True)):
        suffix = "" if key is None else key.replace("_", "").title()
        layer_version = version_of(number, version, suffix)
        publication = None
        if sharing is not None:
            publication = LayerPublication(owner, layer_version, layer_name, sharing, name,
                                           construct_id=f"VersionArn{suffix}")
        published.append(PublishedVersion(layer_version, version.variant, version.asset_hash, version.content,
                                          version.packages, publication))
    return published


class LayerVersions:
    """What the kit's layer constructs share: the versions they publish, and the one a function gets."""

    versions: list[PublishedVersion]
    source: SourceFolder
    node: object  # the construct's node (the class is mixed into a construct)

    def _label(self) -> str:
        return self.node.path  # type: ignore[attr-defined]

    def version_serving(self, target: Target) -> PublishedVersion:
        """The version built for ``target``, or an error naming what the layer serves."""
        for version in self.versions:
            if version.variant.serves(target):
                return version
        serves = ", ".join(f"{'/'.join(v.variant.runtimes)} on {'/'.join(v.variant.architectures)}"
                           for v in self.versions)
        raise LayerkitError(f"{self._label()}: the layer is built for {serves}, not for {target}: add "
                            f"{target.runtime} and {target.architecture} to its runtimes and architectures")

    #: Whether a mistake stopped the layer's build (its error annotation says which): its functions then take its
    #: stand-in version without a mistake of their own.
    broken = False

    def version_for(self, scope: Construct, target: Target | None = None) -> lambda_.ILayerVersion:
        """The version for a function of ``target`` in ``scope``'s stack, referenced as the layer's sharing says."""
        if self.broken:
            return self._stand_in_in(Stack.of(scope))
        if target is None:
            if len(self.versions) > 1:
                raise LayerkitError(
                    f"{self._label()}: the layer has a version per architecture; pass the function's: "
                    "for_stack(stack, runtime=..., architecture=...), or use layerkit.PythonFunction, which picks it")
            version = self.versions[0]
        else:
            version = self.version_serving(target)
        if version.publication is None:
            return version.layer_version
        return version.publication.for_scope(scope)

    def _stand_in_in(self, stack: Stack) -> lambda_.ILayerVersion:
        """What a function gets of a layer that could not be built: an ARN in its own stack, never a reference to
        the layer's stack (which would add exports, and the CDK's warnings about them, to a synth that fails)."""
        name = f"NotBuilt{self.node.addr[:12]}"  # type: ignore[attr-defined]
        found = stack.node.try_find_child(name)
        return found if found is not None else lambda_.LayerVersion.from_layer_version_arn(
            stack, name, "arn:aws:lambda:us-east-1:000000000000:layer:layerkit-not-built:1")

    def packages_for(self, target: Target) -> dict[str, str]:
        """The distributions (canonical name -> version) the version for ``target`` ships to its functions."""
        if self.broken:
            return {}
        return dict(self.version_serving(target).packages.get(target.runtime, {}))

    def grant_usage(self, *, account_id: str | None = None, organization_id: str | None = None) -> None:
        """Let another account (``account_id``), or every account of an organization (``organization_id``), use
        every version this layer publishes (``lambda:GetLayerVersion``)."""
        if (account_id is None) == (organization_id is None):
            raise LayerkitError("grant_usage takes one of account_id='123456789012' or organization_id='o-...'")
        for number, version in enumerate(self.versions):
            version.layer_version.add_permission(
                f"Usage{account_id or organization_id}{number or ''}".replace("-", ""),
                account_id=account_id or "*", organization_id=organization_id)
