"""How the Docker builder runs a construct's bundling: its image, network and container options, and the fixes of
its failures (spelled where the user is: :mod:`layerkit.core.spelling`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import DockerImage
from aws_cdk import aws_lambda_python_alpha as python_alpha

from layerkit.core.spelling import in_use


@dataclass(frozen=True)
class DockerOptions:
    """How the Docker builder runs: the image folder (a Dockerfile taking the build arg ``IMAGE``) and the
    network of the image build and of the bundling container; and what a construct of the alpha's API gives the
    container beside (:mod:`layerkit.constructs.alpha`): its own image, command hooks (run around the kit's), build
    arguments, environment, and the other ``DockerRunOptions``."""

    image_dir: str | Path | None = None
    network: str | None = None
    image: DockerImage | None = None
    hooks: python_alpha.ICommandHooks | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    run_options: dict[str, Any] = field(default_factory=dict)
    #: The alpha option that needs the container (``bundling.image``...), when one does: a fix that builds without
    #: Docker must then say to drop it.
    required_by: str | None = None

    def without_docker(self) -> str:
        """How the user builds without Docker, where they asked for Docker."""
        if self.required_by:
            return f"drop bundling.{self.required_by} to build without Docker"
        return f"build without Docker ({in_use().local})"

    def host_network(self) -> str:
        """How the user gives the bundling container the host's network."""
        return in_use().host_network
