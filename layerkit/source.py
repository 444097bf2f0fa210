"""A layer folder as the user edits it: ``requirements.txt`` (optional) beside ``python/``.

This module reads and checks the folder and fingerprints it; it never installs anything.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from layerkit.errors import LayerSourceError
from layerkit.targets import Target

#: Bumped whenever the layout of a built layer changes, so old cached builds and asset hashes are not reused.
LAYOUT_VERSION = "1"

#: ``name==1.2.3`` (with optional extras and marker): pinned, and readable without importing ``packaging``,
#: which would add 0.1 s to every cached build.
_EXACT_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*===?\s*([^\s,;*=<>!~]+)\s*(?:;.*)?$")

#: Files of the layer folder that never go into a layer: bytecode compiled by whatever Python last ran here.
IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
IGNORED_SUFFIXES = (".pyc", ".pyo")
IGNORED_NAMES = frozenset({".DS_Store"})


def _included(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    if any(part in IGNORED_DIRS for part in rel.parts):
        return False
    return not (path.name in IGNORED_NAMES or path.name.endswith(IGNORED_SUFFIXES))


@dataclass(frozen=True)
class Requirements:
    """The parsed ``requirements.txt``: requirement lines and whether they carry ``--hash`` options."""

    lines: tuple[str, ...]
    names: tuple[str, ...]
    unpinned: tuple[str, ...]
    hashed: bool

    @classmethod
    def parse(cls, path: Path) -> Requirements:
        """Read a pip requirements file; options such as ``--index-url`` pass through to the installer."""
        if not path.exists():
            return cls((), (), (), False)
        text = path.read_text(encoding="utf-8").replace("\\\n", " ")
        lines: list[str] = []
        names: list[str] = []
        unpinned: list[str] = []
        hashed = False
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            lines.append(line)
            if line.startswith("-"):
                continue
            spec, _, options = line.partition(" --")
            spec = spec.strip()
            hashed = hashed or "hash=" in options
            if pinned := _EXACT_PIN.match(spec):
                names.append(pinned.group(1))
                continue
            from packaging.requirements import InvalidRequirement, Requirement

            try:
                req = Requirement(spec)
            except InvalidRequirement as exc:
                raise LayerSourceError(
                    f"{path}:{lineno}: cannot read requirement {spec!r} ({exc}); write it as 'name==version'"
                ) from None
            names.append(req.name)
            pins = [s for s in req.specifier if s.operator in ("==", "===") and "*" not in s.version]
            if not pins or req.url:
                unpinned.append(spec)
        return cls(tuple(lines), tuple(names), tuple(unpinned), hashed)


@dataclass(frozen=True)
class LayerSource:
    """A checked layer folder. Build it with :func:`layerkit.build.build_layer`."""

    root: Path
    requirements: Requirements
    files: tuple[Path, ...] = field(repr=False)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def requirements_file(self) -> Path:
        return self.root / "requirements.txt"

    @property
    def python_dir(self) -> Path:
        return self.root / "python"

    @property
    def warnings(self) -> list[str]:
        """Things that build but that a user should fix (the build still succeeds)."""
        return [
            f"layer {self.name}: requirement {req!r} is not pinned to one version; "
            f"pin it (e.g. 'name==1.2.3') so that every build of the layer installs the same code"
            for req in self.requirements.unpinned
        ]

    @classmethod
    def load(cls, layer_dir: str | Path) -> LayerSource:
        """Check a layer folder: it must exist and hold ``python/``; ``requirements.txt`` is optional."""
        root = Path(layer_dir).resolve()
        if not root.is_dir():
            raise LayerSourceError(f"layer folder {layer_dir} does not exist; create it with a python/ folder")
        python_dir = root / "python"
        if not python_dir.is_dir():
            raise LayerSourceError(
                f"layer {root.name}: {layer_dir} has no python/ folder; Lambda only puts /opt/python on "
                f"sys.path, so move the layer's modules into {Path(layer_dir) / 'python'}/"
            )
        files = tuple(sorted(p for p in python_dir.rglob("*") if p.is_file() and _included(p, root)))
        return cls(root=root, requirements=Requirements.parse(root / "requirements.txt"), files=files)

    def fingerprint(self, target: Target, bytecode: bool = True) -> str:
        """A sha256 of everything that decides the layer's content, and nothing that decides how it is built.

        It is the CDK asset hash: it must not change with the builder (Docker or local) or the machine, so
        an unchanged layer never gets a new version. Whether the layer ships ``.pyc`` is part of its content.
        """
        digest = hashlib.sha256()
        parts = ("layerkit-layout", LAYOUT_VERSION, target.runtime, target.architecture, f"bytecode={bytecode}")
        for part in parts:
            digest.update(part.encode() + b"\0")
        tracked = [*self.files]
        if self.requirements_file.exists():
            tracked.append(self.requirements_file)
        for path in sorted(tracked):
            rel = path.relative_to(self.root).as_posix()
            executable = b"x" if path.stat().st_mode & 0o111 else b"-"
            digest.update(rel.encode() + b"\0" + executable + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()
