"""What a build gives back, whichever builder made it and however many targets its zip serves: one shape for the
local build of one target, a layer version of a matrix, and a Docker bundle zipped for ``layerkit build``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from layerkit.core.targets import Variant
from layerkit.rules.size import Shares


@dataclass(frozen=True)
class Build:
    """A built layer or function: the zip in the cache and what a user wants to know about it.

    ``runtime``, ``architecture``, ``platform`` and ``packages`` describe its first target; a layer version of a
    matrix serves every pair of ``runtimes`` x ``architectures``, with each runtime's packages in
    ``packages_by_runtime``."""

    name: str
    kind: str  # "layer" or "function"
    zip: Path
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    cache: str  # "hit" or "miss"
    builder: str  # "local" or "docker"
    asset_hash: str
    runtime: str
    architecture: str
    platform: str
    packages: list[str]
    bytecode: bool
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    provided_by_layers: list[str] = field(default_factory=list)
    package_cache: dict[str, int] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)  # distributions left out (Slim.without)
    shares: Shares = field(default_factory=Shares)  # what of it could be left out to fit Lambda's limit
    runtimes: list[str] = field(default_factory=list)  # every runtime it serves (default: ``runtime``)
    architectures: list[str] = field(default_factory=list)  # every architecture it serves
    packages_by_runtime: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.runtimes:
            object.__setattr__(self, "runtimes", [self.runtime])
        if not self.architectures:
            object.__setattr__(self, "architectures", [self.architecture])
        if not self.packages_by_runtime:
            object.__setattr__(self, "packages_by_runtime", {runtime: list(self.packages) for runtime in self.runtimes})

    @property
    def variant(self) -> Variant:
        """The runtimes and architectures the zip serves."""
        return Variant(tuple(self.architectures), tuple(self.runtimes))

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["zip"] = str(self.zip)
        return data


#: The name the kit's API has always given a layer's build.
LayerBuild = Build
