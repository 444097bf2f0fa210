"""Read a synthesized cloud assembly (``cdk.out``): its stacks, layers and functions, as they will deploy.

Local invoke and the upgrade check work from this, not from the source tree: what they see is what
``cdk deploy`` ships. A function's layers are resolved across stacks through any of the ways the CDK shares
them: a ``Ref`` in the same stack, an SSM-typed parameter, or an ``Fn::ImportValue`` of another stack's export.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layerkit.core.errors import AssemblyError
from layerkit.core.targets import Target
from layerkit.rules.limits import EPHEMERAL_STORAGE_MB, MEMORY_MB, TIMEOUT_S

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
    root: Path | None = None  # the folder of the assembly (or nested assembly) the stack's paths are relative to

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template.get("Resources", {})

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if r.get("Type") == resource_type}

    def construct_path(self, logical_id: str) -> str:
        """``stack/Function`` for logical ID ``Function76856677``: from the template's path metadata, else from
        the assembly's metadata file (always written), else the logical ID itself."""
        path = self.resources.get(logical_id, {}).get("Metadata", {}).get("aws:cdk:path")
        if isinstance(path, str) and path:
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
        if not (root / "manifest.json").is_file():
            raise AssemblyError(f"{root} is not a cloud assembly (no manifest.json); run 'npx cdk synth' first")
        stacks: dict[str, Stack] = {}
        assets: dict[str, Path] = {}
        _Reader(root).read(stacks, assets)
        if not stacks:
            raise AssemblyError(f"{root} holds no stack; run 'npx cdk synth' in the app's folder")
        return cls(root, stacks, assets)

    @classmethod
    def from_templates(cls, source: str, templates: dict[str, dict[str, Any]]) -> Assembly:
        """Stacks known by their templates only (e.g. as deployed): no asset can be opened."""
        stacks = {name: Stack(name, _template(template, f"the template of stack {name}"), [], {})
                  for name, template in templates.items()}
        return cls(Path(source), stacks, {}, local_assets=False)

    # -- layers ---------------------------------------------------------------------------------------
    def _find_layers(self) -> dict[tuple[str, str], Layer]:
        found: dict[tuple[str, str], Layer] = {}
        for stack in self.stacks.values():
            for logical_id, resource in stack.of_type("AWS::Lambda::LayerVersion").items():
                props = resource.get("Properties", {})
                meta = resource.get("Metadata", {})
                path = stack.construct_path(logical_id)
                where = f"layer {stack.name}/{logical_id}"
                # The kit's metadata sits on its layer construct: the version's parent, or the version itself
                # (PythonLayerVersion), or the parent of a drop-in's other versions.
                kit_meta = next((kit_found for candidate in (path.rsplit("/", 1)[0], path, path.rsplit("/", 2)[0])
                                 if (kit_found := _metadata_of(stack, "/" + candidate, "layerkit:layer"))), None)
                content = _object(props.get("Content") or {}, f"{where}: Content")
                found[(stack.name, logical_id)] = Layer(
                    stack=stack.name,
                    logical_id=logical_id,
                    path=path,
                    name=_name((kit_meta or {}).get("name")) or logical_id,
                    asset=self._asset(stack, content, meta, where),
                    s3_key=_s3_key(content),
                    runtimes=tuple(_texts(props.get("CompatibleRuntimes", []), f"{where}: CompatibleRuntimes")),
                    architectures=tuple(_texts(props.get("CompatibleArchitectures", []),
                                               f"{where}: CompatibleArchitectures")),
                    source=_source((kit_meta or {}).get("source")),
                )
        return found

    def layers(self) -> list[Layer]:
        return list(self._layers.values())

    def errors(self) -> list[str]:
        """The error annotations of the synth (``layerkit.check``'s among them), as the CDK CLI would print them."""
        return [str(entry.get("data")) for stack in self.stacks.values() for entries in stack.metadata.values()
                for entry in entries if isinstance(entry, dict) and entry.get("type") == "aws:cdk:error"]

    def _asset(self, stack: Stack, location: dict[str, Any], meta: dict[str, Any], what: str) -> Path:
        """The file or folder deployed as ``location`` (a Code/Content property), found by its S3 key: always a
        file or folder inside the assembly."""
        if not self.local_assets:
            return Path()
        key = location.get("S3Key")
        path = self.assets.get(key) if isinstance(key, str) else None
        if path is None and meta.get("aws:asset:path"):
            path = _Reader(stack.root or self.directory, self.directory).inside(
                meta["aws:asset:path"], f"{what}: its aws:asset:path")
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
        code = _object(props.get("Code") or {}, f"{what}: Code")
        if props.get("PackageType") == "Image" or "ImageUri" in code:
            raise UnsupportedFunctionError(f"{what} is a container image function; layerkit invokes zip functions only")
        env: dict[str, str] = {}
        unresolved: list[str] = []
        variables = _object(_object(props.get("Environment") or {}, f"{what}: Environment").get("Variables") or {},
                            f"{what}: Environment.Variables")
        for key, value in variables.items():
            if isinstance(value, str | int | float | bool):
                env[key] = str(value)
            else:
                unresolved.append(key)  # a token (Ref, GetAtt...) only CloudFormation can resolve
        runtime = props.get("Runtime")
        if not isinstance(runtime, str) or not runtime.startswith("python"):
            raise UnsupportedFunctionError(f"{what} has runtime {_shape(runtime)}; layerkit invokes Python functions "
                                           "only")
        architectures = _texts(props.get("Architectures") or ["x86_64"], f"{what}: Architectures")
        if architectures[0] not in ("x86_64", "arm64"):
            raise AssemblyError(f"{what}: Architectures is {_shape(architectures[0])}, not x86_64 or arm64; {_CORRUPT}")
        storage = _object(props.get("EphemeralStorage") or {}, f"{what}: EphemeralStorage")
        return Function(
            id=function_id,
            stack=stack.name,
            logical_id=logical_id,
            handler=_text(props.get("Handler", ""), f"{what}: Handler"),
            runtime=runtime,
            architecture=architectures[0],
            memory_mb=_whole_number(props.get("MemorySize"), f"{what}: MemorySize", 128, *MEMORY_MB, "MB"),
            timeout_s=_whole_number(props.get("Timeout"), f"{what}: Timeout", 3, *TIMEOUT_S, "seconds"),
            environment=env,
            code=self._asset(stack, code, meta, what),
            code_s3_key=_s3_key(code),
            ephemeral_storage_mb=_whole_number(storage.get("Size"), f"{what}: EphemeralStorage.Size", 512,
                                               *EPHEMERAL_STORAGE_MB, "MB"),
            source=_source((_metadata_of(stack, "/" + function_id, "layerkit:function") or {}).get("source")),
            layers=tuple(self._resolve_layer(stack, ref, what)
                         for ref in _array(props.get("Layers", []), f"{what}: Layers")),
            unresolved_environment=tuple(unresolved),
        )

    def _resolve_layer(self, stack: Stack, ref: Any, what: str) -> LayerUse:
        if isinstance(ref, dict) and isinstance(ref.get("Ref"), str):
            target = ref["Ref"]
            if (stack.name, target) in self._layers:
                return LayerUse(self._layers[(stack.name, target)], "ref")
            parameter = stack.template.get("Parameters", {}).get(target)
            if parameter and parameter.get("Type") == SSM_PARAMETER_TYPE:
                name = _text(parameter.get("Default", ""), f"{what}: the default of parameter {target}")
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
            if producer and (layer := self._layers.get((producer.name, _ref_of(value)))) is not None:
                return LayerUse(layer, "stack-output", f"{producer.name}.{output.get('OutputName')}")
        raise AssemblyError(
            f"{what}: cannot resolve its layer {json.dumps(ref)[:200]} within this assembly; reference a layer of "
            "another app by its SSM parameter or version ARN (SharedPythonLayer.from_parameter)"
        )

    def _layer_behind_ssm(self, name: str) -> Layer | None:
        """The layer whose version ARN a stack of this assembly writes to SSM parameter ``name``, or None (a layer
        owned elsewhere)."""
        for stack in self.stacks.values():
            for resource in stack.of_type("AWS::SSM::Parameter").values():
                props = resource.get("Properties", {})
                if props.get("Name") == name and (layer := self._layers.get((stack.name, _ref_of(props.get("Value"))))):
                    return layer
        return None

    def layer_published_as(self, name: str) -> Layer | None:
        """The layer this assembly publishes under SSM parameter ``name`` or whose version is ``name`` (an ARN of
        a template parameter's default, as another app would reference it), or None."""
        return self._layer_behind_ssm(name)

    def _layer_behind_export(self, export: str, what: str) -> Layer:
        for producer, output, value in self.exports():
            if export_name(output) == export and (layer := self._layers.get((producer.name, _ref_of(value)))):
                return layer
        raise AssemblyError(f"{what}: no stack of this assembly exports a layer as {export}")

    def exports(self) -> list[tuple[Stack, dict[str, Any], Any]]:
        """Every output with an ``Export``: (producer stack, output, its value)."""
        return [
            (stack, output, output.get("Value"))
            for stack in self.stacks.values()
            for output in (stack.template.get("Outputs") or {}).values()
            if "Export" in output
        ]


def _ref_of(value: Any) -> str | None:
    """The logical id of ``{"Ref": id}``, else None."""
    return value["Ref"] if isinstance(value, dict) and isinstance(value.get("Ref"), str) else None


def export_name(output: dict[str, Any]) -> Any:
    export = output.get("Export")
    return export.get("Name") if isinstance(export, dict) else None


def _s3_key(location: dict[str, Any]) -> str:
    key = location.get("S3Key", "")
    return key if isinstance(key, str) else ""


def _name(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _source(value: Any) -> dict[str, Any] | None:
    """What the kit recorded of a construct's source folder, when it has the shape the kit writes."""
    if isinstance(value, dict) and isinstance(value.get("path"), str) and isinstance(value.get("digest"), str):
        return value
    return None


def _metadata_of(stack: Stack, construct_path: str, entry_type: str) -> dict[str, Any] | None:
    for entry in stack.metadata.get(construct_path, []):
        if entry.get("type") == entry_type and isinstance(entry.get("data"), dict):
            return entry["data"]
    return None


# -- reading an assembly as untrusted input ---------------------------------------------------------------
#: Deeper than this, a JSON document of an assembly is refused: the CDK's are a few dozen levels deep, and the
#: kit's readers must never run out of stack on one made to be deep.
MAX_DEPTH = 100
#: Larger than this, a JSON file of an assembly is refused (CloudFormation takes templates of 1 MB at most).
MAX_JSON_BYTES = 64 * 1024 * 1024
#: How many assemblies deep a stage's nested assembly may sit (a CDK Pipelines app has one or two).
MAX_NESTING = 8
NESTED_ASSEMBLY_ARTIFACT = "cdk:cloud-assembly"
_CORRUPT = "the cloud assembly is corrupt or was not written by the CDK; synthesize it again"


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"{value[:40]!r}" if len(value) <= 40 else f"{value[:40]!r}... (a string)"
    return f"{value!r}"


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AssemblyError(f"{where} is {_shape(value)}, not an object; {_CORRUPT}")
    return value


def _objects(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """An object whose every value is an object (``Resources``, ``Parameters``, ``artifacts``...)."""
    for key, inner in _object(value, where).items():
        _object(inner, f"{where}.{key}")
    return value


def _array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise AssemblyError(f"{where} is {_shape(value)}, not a list; {_CORRUPT}")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise AssemblyError(f"{where} is {_shape(value)}, not a string; {_CORRUPT}")
    return value


def _texts(value: Any, where: str) -> list[str]:
    return [_text(item, f"{where}[{index}]") for index, item in enumerate(_array(value, where))]


def _whole_number(value: Any, where: str, default: int, low: int, high: int, unit: str) -> int:
    """A literal number within Lambda's range; ``default`` where the template leaves it out or leaves it to
    CloudFormation (a ``Ref`` to a parameter)."""
    if value is None or isinstance(value, dict):
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None:
        raise AssemblyError(f"{where} is {_shape(value)}, not a whole number of {unit}; {_CORRUPT}")
    if not low <= number <= high:
        raise AssemblyError(f"{where} is {number} {unit}; Lambda takes {low} to {high}, so no deploy would make it; "
                            f"{_CORRUPT}")
    return number


def _depth_within(value: Any, limit: int) -> bool:
    """Whether ``value`` nests at most ``limit`` levels (walked without recursion)."""
    todo = [(value, 1)]
    while todo:
        current, depth = todo.pop()
        if depth > limit:
            return False
        if isinstance(current, dict):
            todo.extend((inner, depth + 1) for inner in current.values())
        elif isinstance(current, list):
            todo.extend((inner, depth + 1) for inner in current)
    return True


def _template(value: Any, where: str) -> dict[str, Any]:
    """A CloudFormation template with the shapes the kit reads checked: every resource an object with a string
    ``Type`` and object ``Properties`` and ``Metadata``; parameters and outputs objects."""
    template = _object(value, where)
    for section in ("Resources", "Parameters", "Outputs"):
        if section in template:
            _objects(template[section], f"{where}: {section}")
    for logical_id, resource in template.get("Resources", {}).items():
        _text(resource.get("Type"), f"{where}: resource {logical_id}.Type")
        for part in ("Properties", "Metadata"):
            if part in resource:
                _object(resource[part], f"{where}: resource {logical_id}.{part}")
    return template


def _read_json(path: Path, where: str) -> Any:
    """A JSON file of the assembly: at most :data:`MAX_JSON_BYTES`, nested at most :data:`MAX_DEPTH` deep."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise AssemblyError(f"{where}: {path.name} is not a file; {_CORRUPT}")
        if size > MAX_JSON_BYTES:
            raise AssemblyError(f"{where}: {path.name} is {size / 1e6:.0f} MB, larger than any the CDK writes; "
                                f"{_CORRUPT}")
        text = path.read_bytes().decode("utf-8")
        value = json.loads(text)
    except FileNotFoundError:
        raise AssemblyError(f"{path} is missing; the cloud assembly is incomplete, synthesize again") from None
    except RecursionError:
        raise AssemblyError(f"{where}: {path.name} is nested deeper than any JSON the CDK writes; {_CORRUPT}") \
            from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AssemblyError(
            f"{path} is not valid JSON ({exc}); the cloud assembly is corrupt, synthesize again"
        ) from None
    except OSError as error:
        raise AssemblyError(f"{where}: {path} cannot be read ({error.strerror}); synthesize again") from None
    if not _depth_within(value, MAX_DEPTH):
        raise AssemblyError(f"{where}: {path.name} is nested deeper than {MAX_DEPTH} levels, deeper than any JSON "
                            f"the CDK writes; {_CORRUPT}")
    return value


class _Reader:
    """Reads one assembly folder (and the nested assemblies of its stages, whose paths may name the top folder's
    assets): every path it names must resolve inside the top folder, after links."""

    def __init__(self, root: Path, top: Path | None = None, depth: int = 0) -> None:
        self.root = root
        self.top = top or root
        try:
            self.real = os.path.realpath(root, strict=True)
            self.top_real = os.path.realpath(self.top, strict=True)
        except OSError as error:
            raise AssemblyError(f"{root} cannot be read ({error.strerror})") from None
        self.depth = depth

    def inside(self, name: Any, where: str) -> Path:
        """``name`` (a path the assembly gives, relative to its folder), resolved; it must stay in the folder."""
        text = _text(name, where)
        if not text or "\0" in text:
            raise AssemblyError(f"{where} is {_shape(text)}, not a path; {_CORRUPT}")
        real = os.path.realpath(os.path.join(self.real, text))
        if not (real == self.top_real or real.startswith(self.top_real + os.sep)):
            raise AssemblyError(f"{where} names {text!r}, which leads outside the assembly {self.top} (to {real}): "
                                "an assembly never makes the kit read a file outside itself; synthesize it again "
                                "from your own app")
        return Path(real)

    def read(self, stacks: dict[str, Stack], assets: dict[str, Path]) -> None:
        where = f"{self.root / 'manifest.json'}"
        manifest = _object(_read_json(self.inside("manifest.json", where), where), where)
        artifacts = _objects(manifest.get("artifacts") or {}, f"{where}: artifacts")
        for artifact_id, artifact in artifacts.items():
            here = f"{where}: artifact {artifact_id}"
            kind = artifact.get("type")
            props = _object(artifact.get("properties") or {}, f"{here}.properties")
            if kind == ASSET_MANIFEST_ARTIFACT:
                self._assets(props.get("file"), here, assets)
            elif kind == NESTED_ASSEMBLY_ARTIFACT:
                if self.depth >= MAX_NESTING:
                    raise AssemblyError(f"{here}: assemblies nested more than {MAX_NESTING} deep; {_CORRUPT}")
                nested = self.inside(props.get("directoryName"), f"{here}.properties.directoryName")
                _Reader(nested, self.top, self.depth + 1).read(stacks, assets)
            elif kind == STACK_ARTIFACT:
                self._stack(artifact_id, artifact, props, here, stacks)

    def _assets(self, file: Any, where: str, assets: dict[str, Path]) -> None:
        path = self.inside(file, f"{where}.properties.file")
        shown = f"{where} ({path.name})"
        manifest = _object(_read_json(path, shown), shown)
        for asset_id, asset in _objects(manifest.get("files") or {}, f"{shown}: files").items():
            source = _object(asset.get("source"), f"{shown}: files.{asset_id}.source")
            content = self.inside(source.get("path"), f"{shown}: files.{asset_id}.source.path")
            for name, destination in _objects(asset.get("destinations") or {},
                                              f"{shown}: files.{asset_id}.destinations").items():
                key = _text(destination.get("objectKey", ""), f"{shown}: files.{asset_id}.destinations.{name}")
                assets[key] = content

    def _stack(self, artifact_id: str, artifact: dict[str, Any], props: dict[str, Any], where: str,
               stacks: dict[str, Stack]) -> None:
        template_file = props.get("templateFile", f"{artifact_id}.template.json")
        template_path = self.inside(template_file, f"{where}.properties.templateFile")
        name = _text(props.get("stackName") or artifact.get("displayName") or artifact_id, f"{where}.stackName")
        metadata = dict(_object(artifact.get("metadata") or {}, f"{where}.metadata"))
        if extra := artifact.get("additionalMetadataFile"):
            extra_path = self.inside(extra, f"{where}.additionalMetadataFile")
            metadata.update(_object(_read_json(extra_path, where), f"{where}: {extra_path.name}"))
        for path, entries in metadata.items():
            for index, entry in enumerate(_array(entries, f"{where}: metadata {path}")):
                _object(entry, f"{where}: metadata {path}[{index}]")
        dependencies = _texts(artifact.get("dependencies", []), f"{where}.dependencies")
        stacks[name] = Stack(
            name=name,
            template=_template(_read_json(template_path, where), f"{where} ({template_path.name})"),
            dependencies=[d for d in dependencies if not d.endswith(".assets")],
            metadata=metadata,
            root=self.root,
        )
