"""``PythonFunction``: a Lambda function from a folder, with its own dependencies, built like the layers.

It takes the arguments of ``aws_cdk.aws_lambda_python_alpha.PythonFunction`` where they mean the same thing
(``entry``, ``index``, ``handler``, ``runtime``, ``architecture``, ``layers``, ``bundling``'s ``asset_excludes``,
and every other ``lambda.Function`` property), so switching is a change of import. Its code is the ``entry``
folder (without ``events/``, ``tests/``, ``__pycache__``, ``.venv`` and the dependency files) with the
dependencies it declares, in any format a layer accepts, installed at the zip's root for the function's runtime
and architecture: by the CDK's ``PythonFunction`` on the Lambda build image where Docker answers, by the kit's
own build where it does not, under the same asset hash either way.

Choose a layer for what several functions share, or what changes less often than their code (a new layer
version, deployed once); choose the function's own ``requirements.txt`` for what only it needs (it ships in the
function's code, and changing it is a new code asset, not a new layer version). A dependency both ship at the
same version is installed once, in the layer; at different versions ``layerkit.check`` reports it, since on
Lambda ``/var/task`` comes before ``/opt``.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import Annotations, IStableListProducer, Lazy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layerkit.assemble.build_result import Build
from layerkit.constructs.code import (
    Builder,
    CodeAsset,
    CodeOptions,
    builder_metadata,
    builder_of,
    code_asset,
    resolve_bytecode,
)
from layerkit.constructs.layer import LayerVersions
from layerkit.constructs.mistakes import STAND_IN_TARGET, attempt, stand_in_function_code, tell, told_on
from layerkit.core.errors import LayerkitError, LayerSourceError, UnsupportedTargetError
from layerkit.core.targets import Target
from layerkit.docker.options import DockerOptions
from layerkit.installed.slim import Slim
from layerkit.rules.findings import annotation_id
from layerkit.sharing.publication import shared_layer_of
from layerkit.sources import SourceFolder


def _defines(path: Path, name: str, label: str) -> bool:
    """Whether module ``path`` binds ``name`` at its top level (a def, an assignment or an import)."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as error:
        raise LayerSourceError(f"{label}: {path}:{error.lineno}: does not parse ({error.msg}); fix the syntax") \
            from None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, ast.Import | ast.ImportFrom) and any(
                (alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
            return True
    return False


def _checked_source(label: str, entry: str | Path, runtime: lambda_.Runtime, index: str, handler: str,
                    asset_excludes: Sequence[str], poetry: tuple[bool, bool] | None) -> SourceFolder:
    """The function's folder, once its runtime, index file and handler are what Lambda needs."""
    if runtime.family != lambda_.RuntimeFamily.PYTHON:
        raise UnsupportedTargetError(f"{label}: runtime {runtime.name} is not Python; use a Python runtime")
    if not index.endswith(".py"):
        raise LayerSourceError(f"{label}: index {index!r} is not a .py file; name the module that holds the "
                               "handler, e.g. index='handler.py'")
    if "." in handler:  # lambda_.Function's habit, module.function: here the module is index=
        module, _, name = handler.rpartition(".")
        raise LayerSourceError(f"{label}: handler {handler!r} names a module and a function, as lambda_.Function "
                               f"takes it; here they are two keywords: index='{module.replace('.', '/')}.py', "
                               f"handler='{name}'")
    source = SourceFolder.function(entry, tuple(asset_excludes), label, poetry=poetry)
    index_file = source.root / index
    if not index_file.is_file():
        raise LayerSourceError(f"{label}: {index_file} does not exist; create it, or pass index= the file "
                               "(relative to entry) that holds the handler")
    if not _defines(index_file, handler, label):
        raise LayerSourceError(f"{label}: {index_file} defines no {handler!r}; add 'def {handler}(event, "
                               "context)' there, or pass handler= the name of the function to call")
    return source


class PythonFunction(lambda_.Function):
    """A Python function from ``entry``, with its dependencies installed beside its code.

    Its layers deploy in the order given (``lambda.Function`` sorts them by construct path under the recommended
    flag ``@aws-cdk/aws-lambda:recognizeLayerVersion``): a later layer's file wins in ``/opt``.

    Example::

        PythonFunction(self, "Parse", entry="lambdas/parser", index="handler.py", handler="handler",
                       runtime=lambda_.Runtime.PYTHON_3_12, layers=[shared_layer.for_stack(self)])

    Args:
        entry: the function's folder. Its dependencies may be declared in ``Pipfile.lock``, ``poetry.lock``,
            ``uv.lock``, ``requirements.txt`` or ``pyproject.toml``.
        runtime: a Python runtime.
        index: the file, relative to ``entry``, that holds the handler. Default: ``index.py``.
        handler: the name of the handler function in ``index``. Default: ``handler``.
        architecture: ``X86_64`` or ``ARM_64``; wheels are chosen for it. Default: ``X86_64``, left out of the
            template as ``lambda.Function`` leaves it (Lambda's default is x86_64).
        layers: layer versions, or the kit's layers (:class:`SharedPythonLayer`, ``PythonLayerVersion``, a layer
            owned elsewhere), each giving its version for the function's runtime and architecture, referenced as
            its sharing mode says. A distribution they ship at the version the function would install is not
            installed again.
        asset_excludes: glob patterns of files in ``entry`` that never deploy, beside ``events/``, ``tests/`` and
            the never-deploy list (``.env``, virtual environments, tool folders: :mod:`layerkit.shipping.selection`).
        builder, bytecode, docker_image_dir, docker_network, slim: as for :class:`SharedPythonLayer`.
        code_options, poetry, mistake: what :mod:`layerkit.constructs.alpha` maps the alpha's ``bundling`` onto (how
            the code is built, in place of the five arguments above; how a ``poetry.lock`` is read; a mistake it
            found in the alpha's own arguments, told as this function's error).
        **function_props: every other ``lambda.Function`` property, passed through.
    """

    #: The layers deploy in the order given (see the class), the alpha's drop-in too (docs/migrating.md).
    keeps_layer_order = True

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        entry: str | Path,
        runtime: lambda_.Runtime,
        index: str = "index.py",
        handler: str = "handler",
        architecture: lambda_.Architecture | None = None,
        layers: Sequence[lambda_.ILayerVersion | LayerVersions | Any] | None = None,
        asset_excludes: Sequence[str] = (),
        builder: Builder | str | None = None,
        bytecode: bool | None = None,
        docker_image_dir: str | Path | None = None,
        docker_network: str | None = None,
        slim: Slim | None = None,
        code_options: CodeOptions | None = None,
        poetry: tuple[bool, bool] | None = None,
        mistake: str | None = None,
        **function_props: Any,
    ) -> None:
        label = f"function {scope.node.path}/{construct_id}"
        # A runtime the kit does not build for is this function's error too (mistakes.py), not the app's end.
        architecture_name = (architecture or lambda_.Architecture.X86_64).name
        target, unknown_target = attempt(lambda: Target(runtime.name, architecture_name))
        kit_layers = [layer if hasattr(layer, "version_for") else shared_layer_of(layer) for layer in layers or ()]

        def build() -> tuple[SourceFolder, CodeAsset]:
            if mistake is not None:  # found by the alpha's adapter in its own arguments
                raise LayerkitError(mistake)
            if target is None:
                raise UnsupportedTargetError(f"{label}: {unknown_target}")
            source = _checked_source(label, entry, runtime, index, handler, asset_excludes, poetry)
            # The kit's layers (SharedPythonLayer, PythonLayerVersion, an external layer) give the version for this
            # function's target and the distributions it ships; other layer versions are as given.
            provided: dict[str, str] = {}
            for layer in kit_layers:
                if layer is not None:
                    provided.update(layer.packages_for(target))
            how = code_options or CodeOptions(builder, resolve_bytecode(scope, bytecode),
                                              DockerOptions(docker_image_dir, docker_network), slim or Slim())
            return source, code_asset(scope, f"{construct_id}DockerBundle", source, target, how, runtime=runtime,
                                      architecture=architecture or lambda_.Architecture.X86_64, provided=provided,
                                      index=index, handler=handler)

        # A mistake is this construct's error (mistakes.py): the app goes on synthesizing with a stand-in.
        built, told = attempt(build)
        source, code = built if built is not None else (None, None)
        super().__init__(
            scope, construct_id, code=code.code if code is not None else stand_in_function_code(), runtime=runtime,
            architecture=architecture, handler=f"{index.removesuffix('.py')}.{handler}".replace("/", "."),
            **function_props,
        )
        self.broken = told is not None
        if told is not None:
            tell(self, told)
        self.target = target or STAND_IN_TARGET
        self._ordered_layers: list[lambda_.ILayerVersion] = []
        cfn = self.node.default_child
        if self.keeps_layer_order and isinstance(cfn, lambda_.CfnFunction):
            # With @aws-cdk/aws-lambda:recognizeLayerVersion (a recommended flag) the CDK sorts a function's layers
            # by construct path; the order decides which layer's file wins in /opt, so the order given is kept.
            cfn.layers = Lazy.list(_LayerArns(self._ordered_layers), omit_empty=True)
        for layer in layers or () if target is not None else ():  # (no layer serves a runtime the kit refuses)
            with told_on(self):  # a layer of another target: this function's error
                self.add_layers(layer.version_for(self, target) if hasattr(layer, "version_for") else layer)
        if source is None or code is None:
            return
        self.source = source
        self.code_asset: CodeAsset = code
        self.asset_hash = code.asset_hash
        for finding in source.findings:
            Annotations.of(self).add_warning_v2(annotation_id(finding.rule), finding.message)
        self.node.add_metadata("layerkit:function", {
            "name": source.name, "runtime": target.runtime, "architecture": target.architecture,
            "builder": builder_metadata(lambda: self.code_asset), "asset_hash": code.asset_hash,
            "source": source.metadata(),
        })

    @property
    def builder(self) -> Builder:
        """``docker`` or ``local``: what made the function's code."""
        return builder_of(self.code_asset)

    @property
    def build(self) -> Build | None:
        """The local build of the function's code (None where Docker bundled it, or it could not be built)."""
        return self.code_asset.build if self.code_asset is not None else None

    #: The function's code, and how it was made (None: it could not be built, see its error).
    code_asset: CodeAsset | None = None
    #: Whether a mistake stopped its build (its error annotation says which).
    broken = False

    def add_layers(self, *layers: lambda_.ILayerVersion) -> None:
        """Add layers after the ones already given, in this order (the order they are extracted to /opt)."""
        super().add_layers(*layers)
        self._ordered_layers.extend(layers)


@jsii.implements(IStableListProducer)
class _LayerArns:
    """The ARNs of a function's layers in the order they were given, produced at synth."""

    def __init__(self, layers: list[lambda_.ILayerVersion]) -> None:
        self.layers = layers

    def produce(self) -> list[str] | None:
        return [layer.layer_version_arn for layer in self.layers] or None
