"""The stack that owns the app's layers. Functions in other stacks use them; it has no function of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from layerkit import SharedPythonLayer


class LayersStack(Stack):
    """Builds ``layers/my_layer`` and ``layers/another_layer`` once, for one runtime and architecture.

    Where Docker answers, they are bundled in ``docker/Dockerfile`` (the SAM build image, pip pinned).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layers_dir: Path,
        docker_image_dir: Path,
        runtime: lambda_.Runtime,
        architecture: lambda_.Architecture,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        options = {"runtime": runtime, "architecture": architecture, "docker_image_dir": docker_image_dir}
        self.my_layer = SharedPythonLayer(self, "MyLayer", entry=layers_dir / "my_layer", **options)
        self.another_layer = SharedPythonLayer(self, "AnotherLayer", entry=layers_dir / "another_layer", **options)

    @property
    def layers(self) -> list[SharedPythonLayer]:
        return [self.my_layer, self.another_layer]
