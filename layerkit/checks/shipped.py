"""What a layer or function ships, as the checks read it: its staged asset (a zip, or a folder the CDK CLI zips,
read as untrusted input), and what is known of a layer a function uses. Nothing here needs the CDK, so ``layerkit
check`` starts in a blink."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.assembly.assets import AssetContent
from layerkit.core.errors import LayerSourceError
from layerkit.installed import elf
from layerkit.installed.distributions import distributions_in
from layerkit.installed.layer_paths import is_compiled, runtime_of, top_level
from layerkit.rules import native
from layerkit.rules.findings import Finding, Severity
from layerkit.rules.size import Shares
from layerkit.shipping.selection import select

if TYPE_CHECKING:  # the CDK's types: only the synth's checks hold them, and they need no import at run time
    from aws_cdk import aws_lambda as lambda_

    from layerkit.constructs.external import ExternalPythonLayer
    from layerkit.sharing.layer_versions import LayerVersions


class Content:
    """What a layer or function code ships, read from its staged asset: a zip, or a folder the CLI zips (read as
    untrusted input: :mod:`layerkit.assembly.assets`)."""

    def __init__(self, asset: Path, source: Path | None = None, what: str = "") -> None:
        self.asset = asset
        self.source = source  # the folder or file the CDK staged it from, when known
        self.content = AssetContent(asset, what or f"asset {asset.name}")

    @property
    def sizes(self) -> dict[str, int]:
        return self.content.sizes

    @property
    def unzipped_bytes(self) -> int:
        return self.content.unzipped_bytes

    @property
    def zipped_bytes(self) -> int | None:
        return self.content.zipped_bytes

    @cached_property
    def _native_heads(self) -> dict[str, bytes]:
        """The first bytes of every compiled file, read in one pass: a zip is opened once, not once per file
        (a layer with numpy and pandas ships a hundred of them)."""
        names = [entry.name for entry in self.content.entries
                 if entry.link is None and is_compiled(entry.name)]
        return self.content.heads(names, native.HEAD_BYTES)

    def read_head(self, name: str) -> bytes:
        """The first :data:`~layerkit.rules.native.HEAD_BYTES` of the compiled file ``name`` (one that
        :func:`~layerkit.rules.native.is_compiled` names so); a link's is empty (it is not read)."""
        return self._native_heads.get(name, b"")

    @property
    def top_level_names(self) -> set[str]:
        """Importable names a layer puts at the top of ``/opt/python`` (modules and packages)."""
        names = set()
        for path in self.sizes:
            parts = path.split("/")
            if parts[0] != "python" or len(parts) < 2:
                continue
            if runtime_of(path):  # a runtime's own site-packages of a layer built for several
                parts = ["python", *parts[4:]]
                if len(parts) < 2:
                    continue
            top = parts[1]
            if len(parts) == 2:
                if not top.endswith((".py", ".pyd")) and not is_compiled(top):
                    continue
                top = top_level(top)
            if top.endswith((".dist-info", ".egg-info", ".data")) or top in ("__pycache__", "bin", "lib"):
                continue
            names.add(top)
        return names

    def link_findings(self, label: str) -> list[Finding]:
        """The rule for links of :mod:`layerkit.shipping.selection`, applied to the folder the CDK staged this asset
        from (it copies what a link outside the folder reaches): a link to a pseudo-file, a device, a FIFO, or one
        that loops or dangles is an error; one that leads outside the folder, a warning."""
        if self.source is None or not self.source.is_dir():
            return []
        try:
            selection = select(self.source, boundary=self.source, what=label, never_deploy=())
        except LayerSourceError as error:
            return [Finding(Severity.ERROR, "unsafe-link", str(error))]
        return [Finding(Severity.WARNING, "link-outside",
                        f"{label}: {link} in {self.source} is a link to {target}, outside the folder: the CDK copies "
                        "what it reaches into the asset; copy the files in if that is not meant")
                for link, target in selection.outside]

    def shares(self, in_layer: bool) -> Shares:
        """What of it could be left out to fit Lambda's limit (its compiled files are read for debug symbols)."""
        debug = sum(elf.debug_bytes(self.content.read(entry.name)) for entry in self.content.entries
                    if entry.link is None and is_compiled(entry.name))
        return Shares.of(self.sizes, in_layer=in_layer, debug_symbols=debug)

    def distributions(self, in_layer: bool) -> dict[str, str]:
        """Installed distributions (canonical name -> version): a layer's in ``python/``, a function's at
        its root."""
        return distributions_in(self.sizes, in_layer=in_layer)


@dataclass
class LayerRef:
    """A layer a function uses, and what is known of it (nothing for an external ARN)."""

    label: str
    construct: lambda_.LayerVersion | None = None
    shared: LayerVersions | None = None  # the kit's layer construct it is a version of (its folder, its name)
    runtimes: list[str] = field(default_factory=list)
    architectures: list[str] = field(default_factory=list)
    content: Content | None = None
    owned_elsewhere: ExternalPythonLayer | None = None  # its target is known, its content is not
