"""Read a synthesized cloud assembly (``cdk.out``): its stacks, layers and functions, as they will deploy.

Local invoke and the upgrade check work from this, not from the source tree: what they see is what
``cdk deploy`` ships. A function's layers are resolved across stacks through any of the ways the CDK shares
them: a ``Ref`` in the same stack, an SSM-typed parameter, or an ``Fn::ImportValue`` of another stack's export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layerkit.errors import AssemblyError
from layerkit.targets import Target

STACK_ARTIFACT = "aws:cloudformation:stack"
ASSET_MANIFEST_ARTIFACT = "cdk:asset-manifest"
SSM_PARAMETER_TYPE = "AWS::SSM::Parameter::Value<String>"


class UnsupportedFunctionError(AssemblyError):
    """A function the kit does not run: another runtime, a container image, or code that is not in the assembly."""


@dataclass(frozen=True)
class Layer:
    """One ``AWS::Lambda::LayerVersion`` of the assembly."""

    stack: str
    logical_id: str
    path: str
    name: str
    asset: Path | None  # None for a layer owned elsewhere, until an invoke fetches it
    s3_key: str
    runtimes: tuple[str, ...]
    architectures: tuple[str, ...]
    source: dict[str, Any] | None = None  # the folder it was built from (layerkit's layers), as synthesized
    owned_elsewhere: str = ""  # the SSM parameter or version ARN of a layer another app publishes

    @classmethod
    def elsewhere(cls, name: str) -> Layer:
        """A layer this assembly does not build, known by the SSM parameter or version ARN that names it."""
        return cls("", "", f"(owned elsewhere) {name}", name, None, "", (), (), owned_elsewhere=name)

    @property
    def id(self) -> str:
        """The construct path, e.g. ``lambda-layers-example/MyLayer/Layer``."""
        return self.path


@dataclass(frozen=True)
class LayerUse:
    """A function's reference to a layer, and how it crosses stacks (``ref``, ``ssm``, ``export`` or
    ``stack-output``, the CDK's weak reference)."""

    layer: Layer
    via: str
    detail: str = ""


@dataclass(frozen=True)
class Function:
    """One ``AWS::Lambda::Function``, with what a local invoke needs to reproduce its environment."""

    id: str
    stack: str
    logical_id: str
    handler: str
    runtime: str
    architecture: str
    memory_mb: int
    timeout_s: int
    environment: dict[str, str]
    code: Path
    layers: tuple[LayerUse, ...]
    unresolved_environment: tuple[str, ...] = field(default=())
    code_s3_key: str = ""
    ephemeral_storage_mb: int = 512  # the size of its /tmp
    source: dict[str, Any] | None = None  # the folder it was built from (layerkit.PythonFunction), as synthesized

    @property
    def target(self) -> Target:
        """The runtime and architecture it runs on."""
        return Target(self.runtime, self.architecture)


@dataclass
class Stack:
    name: str
    template: dict[str, Any]
    dependencies: list[str]
    metadata: dict[str, list[dict[str, Any]]]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources", {})

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if r.get("Type") == resource_type}

    def construct_path(self, logical_id: str) -> str:
        """``stack/Function`` for logical ID ``Function76856677``: from the template's path metadata, else from
        the assembly's metadata file (always written), else the logical ID itself."""
        path = self.resources.get(logical_id, {}).get("Metadata", {}).get("aws:cdk:path")
        if path:
            return path.removesuffix("/Resource")
        for construct, entries in self.metadata.items():
            if {"type": "aws:cdk:logicalId", "data": logical_id} in entries:
                return construct.lstrip("/").removesuffix("/Resource")
        return f"{self.name}/{logical_id}"


class Assembly:
    """A loaded ``cdk.out``. ``Assembly.load("cdk.out").function("my-stack/Function")``."""

    def __init__(
        self, directory: Path, stacks: dict[str, Stack], assets: dict[str, Path], *, local_assets: bool = True
    ) -> None:
        self.directory = directory
        self.stacks = stacks
        self.assets = assets  # S3 object key -> the file or folder that the CLI uploads under it
        self.local_assets = local_assets  # False for templates read back from CloudFormation
        self._layers = self._find_layers()

    @classmethod
    def load(cls, directory: str | Path) -> Assembly:
        root = Path(directory)
        manifest_path = root / "manifest.json"
        if not manifest_path.is_file():
            raise AssemblyError(f"{root} is not a cloud assembly (no manifest.json); run 'npx cdk synth' first")
        manifest = _read_json(manifest_path)
        stacks: dict[str, Stack] = {}
        assets: dict[str, Path] = {}
        for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
            if artifact.get("type") == ASSET_MANIFEST_ARTIFACT:
                asset_manifest = _read_json(root / artifact.get("properties", {}).get("file", ""))
                for asset in (asset_manifest.get("files") or {}).values():
                    for destination in (asset.get("destinations") or {}).values():
                        assets[destination.get("objectKey", "")] = root / asset["source"]["path"]
            if artifact.get("type") != STACK_ARTIFACT:
                continue
            props = artifact.get("properties") or {}
            template_path = root / props.get("templateFile", f"{artifact_id}.template.json")
            name = props.get("stackName") or artifact.get("displayName") or artifact_id
            metadata = dict(artifact.get("metadata") or {})
            if extra := artifact.get("additionalMetadataFile"):
                metadata.update(_read_json(root / extra))
            stacks[name] = Stack(
                name=name,
                template=_read_json(template_path),
                dependencies=[d for d in artifact.get("dependencies", []) if not d.endswith(".assets")],
                metadata=metadata,
            )
        if not stacks:
            raise AssemblyError(f"{root} holds no stack; run 'npx cdk synth' in the app's folder")
        return cls(root, stacks, assets)

    @classmethod
    def from_templates(cls, source: str, templates: dict[str, dict[str, Any]]) -> Assembly:
        """Stacks known by their templates only (e.g. as deployed): no asset can be opened."""
        stacks = {name: Stack(name, template, [], {}) for name, template in templates.items()}
        return cls(Path(source), stacks, {}, local_assets=False)

    # -- layers ---------------------------------------------------------------------------------------
    def _find_layers(self) -> dict[tuple[str, str], Layer]:
        found: dict[tuple[str, str], Layer] = {}
        for stack in self.stacks.values():
            for logical_id, resource in stack.of_type("AWS::Lambda::LayerVersion").items():
                props = resource.get("Properties", {})
                meta = resource.get("Metadata", {})
                path = stack.construct_path(logical_id)
                # The kit's metadata sits on its layer construct: the version's parent, or the version itself
                # (PythonLayerVersion), or the parent of a drop-in's other versions.
                kit_meta = next((kit_found for candidate in (path.rsplit("/", 1)[0], path, path.rsplit("/", 2)[0])
                                 if (kit_found := _metadata_of(stack, "/" + candidate, "layerkit:layer"))), None)
                found[(stack.name, logical_id)] = Layer(
                    stack=stack.name,
                    logical_id=logical_id,
                    path=path,
                    name=(kit_meta or {}).get("name") or logical_id,
                    asset=self._asset(props.get("Content"), meta, f"layer {stack.name}/{logical_id}"),
                    s3_key=str((props.get("Content") or {}).get("S3Key", "")),
                    runtimes=tuple(props.get("CompatibleRuntimes", [])),
                    architectures=tuple(props.get("CompatibleArchitectures", [])),
                    source=(kit_meta or {}).get("source"),
                )
        return found

    def layers(self) -> list[Layer]:
        return list(self._layers.values())

    def errors(self) -> list[str]:
        """The error annotations of the synth (``layerkit.check``'s among them), as the CDK CLI would print them."""
        return [str(entry.get("data")) for stack in self.stacks.values() for entries in stack.metadata.values()
                for entry in entries if isinstance(entry, dict) and entry.get("type") == "aws:cdk:error"]

    def _asset(self, location: Any, meta: dict[str, Any], what: str) -> Path:
        """The file or folder deployed as ``location`` (a Code/Content property), found by its S3 key."""
        if not self.local_assets:
            return Path()
        key = location.get("S3Key") if isinstance(location, dict) else None
        path = self.assets.get(key) if isinstance(key, str) else None
        if path is None and meta.get("aws:asset:path"):
            path = self.directory / meta["aws:asset:path"]
        if path is None:
            raise UnsupportedFunctionError(
                f"{what}: its code is not an asset of this assembly (inline code or an S3 object)")
        if not path.exists():
            raise AssemblyError(f"{what}: asset {path.name} is missing from {self.directory}; synthesize again")
        return path

    # -- functions ------------------------------------------------------------------------------------
    def functions(self) -> list[Function]:
        """The zip-packaged Python functions whose code is in the assembly (others are not the kit's to run)."""
        result = []
        for stack in self.stacks.values():
            for logical_id, resource in stack.of_type("AWS::Lambda::Function").items():
                try:
                    result.append(self._function(stack, logical_id, resource))
                except UnsupportedFunctionError:
                    continue
        return result

    def function(self, function_id: str) -> Function:
        """A function by ``STACK/CONSTRUCT_ID`` (e.g. ``my-stack/Function``) or ``STACK/LOGICAL_ID``."""
        for stack in self.stacks.values():
            for logical_id, resource in stack.of_type("AWS::Lambda::Function").items():
                if function_id in (stack.construct_path(logical_id), f"{stack.name}/{logical_id}"):
                    return self._function(stack, logical_id, resource)  # says why, if it cannot be run
        known = ", ".join(fn.id for fn in self.functions()) or "none"
        raise AssemblyError(f"no function {function_id!r} in {self.directory}; known functions: {known}")

    def _function(self, stack: Stack, logical_id: str, resource: dict[str, Any]) -> Function:
        props = resource.get("Properties", {})
        meta = resource.get("Metadata", {})
        function_id = stack.construct_path(logical_id)
        what = f"function {function_id}"
        if props.get("PackageType") == "Image" or "ImageUri" in (props.get("Code") or {}):
            raise UnsupportedFunctionError(f"{what} is a container image function; layerkit invokes zip functions only")
        env: dict[str, str] = {}
        unresolved: list[str] = []
        for key, value in ((props.get("Environment") or {}).get("Variables") or {}).items():
            if isinstance(value, str | int | float | bool):
                env[key] = str(value)
            else:
                unresolved.append(key)  # a token (Ref, GetAtt...) only CloudFormation can resolve
        runtime = props.get("Runtime")
        if not runtime or not str(runtime).startswith("python"):
            raise UnsupportedFunctionError(f"{what} has runtime {runtime!r}; layerkit invokes Python functions only")
        return Function(
            id=function_id,
            stack=stack.name,
            logical_id=logical_id,
            handler=props.get("Handler", ""),
            runtime=runtime,
            architecture=(props.get("Architectures") or ["x86_64"])[0],
            memory_mb=int(props.get("MemorySize", 128)),
            timeout_s=int(props.get("Timeout", 3)),
            environment=env,
            code=self._asset(props.get("Code"), meta, what),
            code_s3_key=str((props.get("Code") or {}).get("S3Key", "")),
            ephemeral_storage_mb=int((props.get("EphemeralStorage") or {}).get("Size", 512)),
            source=(_metadata_of(stack, "/" + function_id, "layerkit:function") or {}).get("source"),
            layers=tuple(self._resolve_layer(stack, ref, what) for ref in props.get("Layers", [])),
            unresolved_environment=tuple(unresolved),
        )

    def _resolve_layer(self, stack: Stack, ref: Any, what: str) -> LayerUse:
        if isinstance(ref, dict) and "Ref" in ref:
            target = ref["Ref"]
            if (stack.name, target) in self._layers:
                return LayerUse(self._layers[(stack.name, target)], "ref")
            parameter = stack.template.get("Parameters", {}).get(target)
            if parameter and parameter.get("Type") == SSM_PARAMETER_TYPE:
                name = parameter.get("Default", "")
                return LayerUse(self._layer_behind_ssm(name) or Layer.elsewhere(name), "ssm", name)
        if isinstance(ref, str) and ref.startswith("arn:"):
            return LayerUse(Layer.elsewhere(ref), "arn", ref)
        if isinstance(ref, dict) and "Fn::ImportValue" in ref and isinstance(ref["Fn::ImportValue"], str):
            export = ref["Fn::ImportValue"]
            return LayerUse(self._layer_behind_export(export, what), "export", export)
        if isinstance(ref, dict) and isinstance(output := ref.get("Fn::GetStackOutput"), dict):
            # The CDK's weak cross-stack reference (@aws-cdk/core:defaultCrossStackReferences=weak).
            producer = self.stacks.get(str(output.get("StackName")))
            value = (producer.template.get("Outputs", {}).get(str(output.get("OutputName")), {}).get("Value")
                     if producer else None)
            if isinstance(value, dict) and producer and (producer.name, value.get("Ref")) in self._layers:
                return LayerUse(self._layers[(producer.name, value["Ref"])], "stack-output",
                                f"{producer.name}.{output.get('OutputName')}")
        raise AssemblyError(
            f"{what}: cannot resolve its layer {json.dumps(ref)} within this assembly; reference a layer of "
            "another app by its SSM parameter or version ARN (SharedPythonLayer.from_parameter)"
        )

    def _layer_behind_ssm(self, name: str) -> Layer | None:
        """The layer whose version ARN a stack of this assembly writes to SSM parameter ``name``, or None (a layer
        owned elsewhere)."""
        for stack in self.stacks.values():
            for resource in stack.of_type("AWS::SSM::Parameter").values():
                props = resource.get("Properties", {})
                value = props.get("Value")
                named = props.get("Name") == name and isinstance(value, dict)
                if named and (stack.name, value.get("Ref")) in self._layers:
                    return self._layers[(stack.name, value["Ref"])]
        return None

    def layer_published_as(self, name: str) -> Layer | None:
        """The layer this assembly publishes under SSM parameter ``name`` or whose version is ``name`` (an ARN of
        a template parameter's default, as another app would reference it), or None."""
        return self._layer_behind_ssm(name)

    def _layer_behind_export(self, export: str, what: str) -> Layer:
        for producer, output, value in self.exports():
            named = output.get("Export", {}).get("Name") == export and isinstance(value, dict)
            if named and (producer.name, value.get("Ref")) in self._layers:
                return self._layers[(producer.name, value["Ref"])]
        raise AssemblyError(f"{what}: no stack of this assembly exports a layer as {export}")

    def exports(self) -> list[tuple[Stack, dict[str, Any], Any]]:
        """Every output with an ``Export``: (producer stack, output, its value)."""
        return [
            (stack, output, output.get("Value"))
            for stack in self.stacks.values()
            for output in (stack.template.get("Outputs") or {}).values()
            if isinstance(output, dict) and "Export" in output
        ]


def _metadata_of(stack: Stack, construct_path: str, entry_type: str) -> dict[str, Any] | None:
    for entry in stack.metadata.get(construct_path, []):
        if entry.get("type") == entry_type:
            return entry.get("data")
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AssemblyError(f"{path} is missing; the cloud assembly is incomplete, synthesize again") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AssemblyError(
            f"{path} is not valid JSON ({exc}); the cloud assembly is corrupt, synthesize again"
        ) from None
