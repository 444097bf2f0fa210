"""A source folder as the user edits it: code, and the file that declares its dependencies.

A layer folder holds ``python/`` (the code, which lands at ``/opt/python``); a function folder is the code
itself (it lands at ``/var/task``). Either may declare dependencies in one of these files, found in this order,
as ``PythonLayerVersion`` and ``PythonFunction`` look for them: ``Pipfile.lock``, ``poetry.lock``, ``uv.lock``
(each with its project file), ``requirements.txt``, and a ``pyproject.toml`` whose ``[project]`` declares
dependencies without a lock. A second declaration beside the first must agree with it (checked once the first
is pinned for the target); a declaration without the file that makes it installable (a ``Pipfile`` without
its lock) is refused: never a layer that silently lacks its dependencies.

This package reads and fingerprints; it never installs anything.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from layerkit.archive import mode_of
from layerkit.errors import DeclarationError, LayerSourceError
from layerkit.sources.declaration import Declaration, Requirement
from layerkit.targets import Destination, Target

if TYPE_CHECKING:
    from layerkit.installed import Distribution

#: Bumped whenever the layout of a build changes, so old cached builds and asset hashes are not reused.
LAYOUT_VERSION = "2"

#: Declaration files, in the order they are looked for.
DECLARATIONS = ("Pipfile.lock", "poetry.lock", "uv.lock", "requirements.txt", "pyproject.toml")
#: Each declaration file's reader: (module of this package, function), imported only for a folder that has one.
READERS = {
    "Pipfile.lock": ("pipfilelock", "read_pipfile_lock"),
    "poetry.lock": ("poetrylock", "read_poetry_lock"),
    "uv.lock": ("uvlock", "read_uv_lock"),
    "requirements.txt": ("requirements", "read_requirements"),
    "pyproject.toml": ("pyproject", "read_pyproject"),
}
#: Files that only describe dependencies: never part of the deployed code.
DEPENDENCY_FILES = frozenset({*DECLARATIONS, "Pipfile", ".python-version"})
#: Never deployed, whatever the folder: bytecode of whatever Python last ran here, tools' caches.
IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv", ".git", ".tox",
                          "node_modules"})
IGNORED_SUFFIXES = (".pyc", ".pyo")
IGNORED_NAMES = frozenset({".DS_Store"})
#: What a function folder holds beside its code that never deploys (PythonFunction's asset_excludes default).
FUNCTION_EXCLUDES = ("events", "tests")
#: Never part of a local path package's fingerprint: what building it writes.
_PACKAGE_BUILD_OUTPUT = frozenset({"build", "dist"})


def _walk(root: Path, excluded: tuple[str, ...] = (), skip_dirs: frozenset[str] = IGNORED_DIRS) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in skip_dirs or part.endswith(".egg-info") for part in rel.parts[:-1 if path.is_file() else None]):
            continue
        if not path.is_file() or path.name in IGNORED_NAMES or path.name.endswith(IGNORED_SUFFIXES):
            continue
        posix = rel.as_posix()
        if any(fnmatch.fnmatch(posix, pattern) or any(fnmatch.fnmatch(part, pattern) for part in rel.parts)
               for pattern in excluded):
            continue
        found.append(path)
    return found


@dataclass(frozen=True)
class SourceFolder:
    """A checked layer or function folder. Build it with :mod:`layerkit.build`."""

    root: Path
    destination: Destination
    code_files: tuple[Path, ...] = field(repr=False)
    declaration_names: tuple[str, ...] = ()
    label: str = ""

    @property
    def name(self) -> str:
        """The folder's name, e.g. ``my_layer``."""
        return self.root.name

    @property
    def code_root(self) -> Path:
        """Where the code sits: ``python/`` of a layer folder, the function folder itself."""
        return self.root / "python" if self.destination is Destination.LAYER else self.root

    @property
    def what(self) -> str:
        """``layer my_layer`` or ``function order_total``, to start a message."""
        return self.label or f"{'layer' if self.destination is Destination.LAYER else 'function'} {self.name}"

    # -- loading --------------------------------------------------------------------------------------
    @classmethod
    def layer(cls, layer_dir: str | Path) -> SourceFolder:
        """A layer folder: it must exist and hold ``python/``."""
        root = Path(layer_dir).resolve()
        if not root.is_dir():
            raise LayerSourceError(f"layer folder {layer_dir} does not exist; create it with a python/ folder")
        if not (root / "python").is_dir():
            raise LayerSourceError(
                f"layer {root.name}: {layer_dir} has no python/ folder; Lambda only puts /opt/python on "
                f"sys.path, so move the layer's modules into {Path(layer_dir) / 'python'}/"
            )
        return cls(root, Destination.LAYER, tuple(_walk(root / "python")), cls._declarations(root))

    @classmethod
    def function(cls, entry: str | Path, excludes: tuple[str, ...] = (), label: str = "") -> SourceFolder:
        """A function folder: its code minus what never deploys (``events/``, ``tests/``, ``excludes``)."""
        root = Path(entry).resolve()
        if not root.is_dir():
            raise LayerSourceError(f"{label or 'function'}: entry folder {entry} does not exist; "
                                   "point entry= at the folder that holds the function's code")
        names = cls._declarations(root)
        folder = cls(root, Destination.FUNCTION, (), names, label)
        # What the declarations read (an included file, a local wheel) is an input, not code to deploy.
        inputs = set(folder.inputs())
        files = tuple(p for p in _walk(root, (*FUNCTION_EXCLUDES, *excludes))
                      if p.relative_to(root).as_posix() not in DEPENDENCY_FILES and p not in inputs)
        return cls(root, Destination.FUNCTION, files, names, label)

    @staticmethod
    def _declarations(root: Path) -> tuple[str, ...]:
        present = tuple(name for name in DECLARATIONS if (root / name).is_file())
        if (root / "Pipfile").is_file() and "Pipfile.lock" not in present:
            raise DeclarationError(f"{root / 'Pipfile'}: declares dependencies but has no Pipfile.lock beside it; "
                                   "run 'pipenv lock' in that folder")
        if "pyproject.toml" in present:
            from layerkit.sources.pyproject import declares_dependencies

            # Beside a lock it is the lock's own project file; without [project] dependencies, a tool's settings.
            if {"poetry.lock", "uv.lock"} & set(present) or not declares_dependencies(root / "pyproject.toml"):
                present = tuple(n for n in present if n != "pyproject.toml")
        return present

    # -- declarations ---------------------------------------------------------------------------------
    @cached_property
    def declarations(self) -> tuple[Declaration, ...]:
        """Every declaration in the folder, the one that is installed first."""
        import importlib

        return tuple(getattr(importlib.import_module(f"layerkit.sources.{module}"), reader)(self.root / name)
                     for name in self.declaration_names for module, reader in [READERS[name]])

    @property
    def declaration(self) -> Declaration | None:
        """The declaration that is installed, or None for code without dependencies."""
        return self.declarations[0] if self.declarations else None

    @property
    def warnings(self) -> list[str]:
        """Things that build but that a user should fix."""
        if self.declaration is None:
            return []
        return [
            f"{self.what}: requirement {r.text!r} is not pinned to one version ({r.origin}); pin it (e.g. "
            "'name==1.2.3') or lock it, so that every build installs the same code"
            for r in self.declaration.unpinned
        ]

    def installed_copies(self) -> list[Distribution]:
        """Distributions installed into the code folder by hand (``pip install -t python/``)."""
        from layerkit.installed import read_distributions

        return read_distributions(self.code_root)

    # -- fingerprint ----------------------------------------------------------------------------------
    def inputs(self) -> list[Path]:
        """Every file that decides the built code, the folder's own and those its declarations name."""
        tracked = [*self.code_files]
        for declaration in self.declarations:
            tracked += declaration.files
            tracked += _local_inputs(declaration.requirements)
            tracked += _local_inputs(declaration.constraints)
        return sorted(set(tracked))

    def fingerprint(self, target: Target, *, bytecode: bool, provided: Mapping[str, str] | None = None) -> str:
        """A sha256 of everything that decides the built code, and nothing that decides how it is built;
        ``provided`` (name -> version, what a function's layers ship, so not installed again) is part of it.

        It is the CDK asset hash: it must not change with the builder (Docker or local), the machine or where
        the repository sits, so an unchanged layer never gets a new version. Credentials never enter it: they
        live in the environment, not in these files.
        """
        digest = hashlib.sha256()
        parts = ("layerkit", LAYOUT_VERSION, self.destination.value, target.runtime, target.architecture,
                 f"bytecode={bytecode}",
                 *(f"provided {name}=={version}" for name, version in sorted((provided or {}).items())))
        for part in parts:
            digest.update(part.encode() + b"\0")
        for path in self.inputs():
            data = path.read_bytes()
            rel = Path(_relative(path, self.root)).as_posix()
            digest.update(f"{rel}\0{mode_of(data[:4]):o}\0".encode())
            digest.update(hashlib.sha256(data).digest())
        return digest.hexdigest()


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, with ``..`` where it sits outside: the same wherever the repo is."""
    import os

    return os.path.relpath(path, root)


def package_files(folder: Path) -> list[Path]:
    """The files of a local path package that decide the wheel built from it (not what building it writes)."""
    return _walk(folder, skip_dirs=IGNORED_DIRS | _PACKAGE_BUILD_OUTPUT)


def _local_inputs(requirements: tuple[Requirement, ...]) -> list[Path]:
    found: list[Path] = []
    for requirement in requirements:
        if requirement.local is None:
            continue
        if requirement.local.is_dir():
            found += package_files(requirement.local)
        else:
            found.append(requirement.local)
    return found
