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

import difflib
import hashlib
import importlib
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layerkit.core.archive import mode_of
from layerkit.core.errors import DeclarationError, LayerSourceError, SecretError
from layerkit.core.spelling import in_use
from layerkit.core.targets import Destination, Target
from layerkit.installed.distributions import read_distributions
from layerkit.rules.findings import Finding, Severity
from layerkit.rules.limits import MAX_UNZIPPED_BYTES
from layerkit.rules.size import megabytes
from layerkit.shipping import secrets
from layerkit.shipping.selection import Selection, select
from layerkit.sources.declaration import Declaration, Requirement
from layerkit.sources.pyproject import declares_dependencies

if TYPE_CHECKING:
    from layerkit.installed.distributions import Distribution

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
#: What a function folder holds beside its code that never deploys (PythonFunction's asset_excludes default).
FUNCTION_EXCLUDES = ("events", "tests")
#: Never part of a local path package's fingerprint: what building it writes.
_PACKAGE_BUILD_OUTPUT = ("build", "dist")
#: Bytes read at a time from a source file: fingerprinting a large file never holds it whole.
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class SourceFolder:
    """A checked layer or function folder. Build it with :mod:`layerkit.assemble.local_build`."""

    root: Path
    destination: Destination
    code_files: tuple[Path, ...] = field(repr=False)
    declaration_names: tuple[str, ...] = ()
    label: str = ""
    excludes: tuple[str, ...] = ()  # the construct's own patterns (beside the never-deploy list)
    #: Links among the code files that lead outside the folder: ``(link, relative to the code root; target)``.
    links_outside: tuple[tuple[str, str], ...] = ()
    #: The folder of ``root`` that holds the code: ``python`` for a layer folder as the kit lays it out, ``""``
    #: for a function folder and for a layer whose entry is its code (``PythonLayerVersion``'s layout).
    code_folder: str = ""
    #: How a ``poetry.lock`` is read, as the alpha's options say: ``(include its hashes, without its sources'
    #: URLs)``; None: the kit's way (hashes checked, sources kept).
    poetry: tuple[bool, bool] | None = None

    @property
    def name(self) -> str:
        """The folder's name, e.g. ``my_layer``."""
        return self.root.name

    @property
    def code_root(self) -> Path:
        """Where the code sits: ``python/`` of a layer folder, the function folder itself (or, for a layer of
        ``PythonLayerVersion``'s layout, the entry itself)."""
        return self.root / self.code_folder if self.code_folder else self.root

    @property
    def what(self) -> str:
        """``layer my_layer`` or ``function order_total``, to start a message."""
        return self.label or f"{'layer' if self.destination is Destination.LAYER else 'function'} {self.name}"

    # -- loading --------------------------------------------------------------------------------------
    @classmethod
    def layer(cls, layer_dir: str | Path, excludes: tuple[str, ...] = ()) -> SourceFolder:
        """A layer folder: its modules in ``python/``, its dependencies declared beside it (a layer of
        dependencies alone needs no ``python/``, which git would not keep empty). ``excludes`` never deploy (glob
        patterns, relative to ``python/``), nor does anything on the never-deploy list
        (:mod:`layerkit.shipping.selection`)."""
        root = Path(layer_dir).resolve()
        if root.is_file():
            raise LayerSourceError(f"{layer_dir} is a file, and a layer is a folder: give the folder that holds "
                                   "python/ and the dependency declaration")
        if not root.is_dir():
            raise LayerSourceError(f"layer folder {layer_dir} does not exist; create it with a python/ folder")
        declarations = cls._declarations(root)
        if not (root / "python").is_dir():
            modules = sorted(p.name for p in root.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file())
            if declarations and not modules:  # a layer of dependencies alone
                return cls(root, Destination.LAYER, (), declarations, excludes=tuple(excludes), code_folder="python")
            found = f" (found {', '.join(modules[:3])})" if modules else ""
            raise LayerSourceError(
                f"layer {root.name}: {layer_dir} has no python/ folder{found}; Lambda only puts /opt/python on "
                f"sys.path, so move the layer's modules into {Path(layer_dir) / 'python'}/"
            )
        what = f"layer {root.name}"
        _refuse_declarations_in_code(root / "python", what, "python/", root)
        selection = _select(root / "python", root, what, excludes)
        return cls(root, Destination.LAYER, selection.files, declarations, excludes=tuple(excludes),
                   links_outside=selection.outside, code_folder="python")

    @classmethod
    def entry_layer(cls, entry: str | Path, excludes: tuple[str, ...] = (), label: str = "",
                    poetry: tuple[bool, bool] | None = None) -> SourceFolder:
        """A layer whose entry folder is its code, as ``PythonLayerVersion`` lays one out: the entry's files land
        in ``python/``, its dependency files are read, never shipped."""
        return cls._code_at_root(entry, Destination.LAYER, excludes, label, poetry, hidden=(),
                                 holds="the layer's modules and its requirements")

    @classmethod
    def function(cls, entry: str | Path, excludes: tuple[str, ...] = (), label: str = "",
                 poetry: tuple[bool, bool] | None = None) -> SourceFolder:
        """A function folder: its code minus what never deploys (``events/``, ``tests/``, ``excludes``, the
        never-deploy list of :mod:`layerkit.shipping.selection`)."""
        return cls._code_at_root(entry, Destination.FUNCTION, excludes, label, poetry, hidden=FUNCTION_EXCLUDES,
                                 holds="the function's code")

    @classmethod
    def _code_at_root(cls, entry: str | Path, destination: Destination, excludes: tuple[str, ...], label: str,
                      poetry: tuple[bool, bool] | None, *, hidden: tuple[str, ...], holds: str) -> SourceFolder:
        """A folder whose code sits at its top, beside its dependency declaration (a function, or an alpha-style
        layer entry); ``hidden`` are excludes of the kind itself, not the user's (kept out of ``excludes``)."""
        root = Path(entry).resolve()
        kind = "layer" if destination is Destination.LAYER else "function"
        if root.is_file():
            raise LayerSourceError(f"{label or kind}: {entry} is a file, and entry is a folder: point it at the "
                                   f"folder that holds {holds}")
        if not root.is_dir():
            raise LayerSourceError(f"{label or kind}: entry folder {entry} does not exist; point entry= at the "
                                   f"folder that holds {holds}")
        names = cls._declarations(root)
        folder = cls(root, destination, (), names, label, poetry=poetry)
        # What the declarations read (an included file, a local wheel) is an input, not code to deploy.
        inputs = set(folder.inputs())
        selection = _select(root, root, folder.what, (*hidden, *excludes))
        files = tuple(p for p in selection.files
                      if p.relative_to(root).as_posix() not in DEPENDENCY_FILES and p not in inputs)
        if destination is Destination.FUNCTION and not any(p.suffix == ".py" for p in selection.files):
            raise LayerSourceError(f"{label or kind}: {entry} holds no Python module to deploy; a function's folder "
                                   "holds the module with its handler (e.g. index.py)")
        return cls(root, destination, files, names, label, tuple(excludes), selection.outside, poetry=poetry)

    @staticmethod
    def _declarations(root: Path) -> tuple[str, ...]:
        present = tuple(name for name in DECLARATIONS if (root / name).is_file())
        if (root / "Pipfile").is_file() and "Pipfile.lock" not in present:
            raise DeclarationError(f"{root / 'Pipfile'}: declares dependencies but has no Pipfile.lock beside it; "
                                   "run 'pipenv lock' in that folder")
        # Beside a lock, pyproject.toml is the lock's own project file; without [project] dependencies, a tool's
        # settings.
        if "pyproject.toml" in present and (
                {"poetry.lock", "uv.lock"} & set(present) or not declares_dependencies(root / "pyproject.toml")):
            present = tuple(n for n in present if n != "pyproject.toml")
        _refuse_near_misses(root, present)
        return present

    # -- declarations ---------------------------------------------------------------------------------
    @cached_property
    def declarations(self) -> tuple[Declaration, ...]:
        """Every declaration in the folder, the one that is installed first."""
        found = tuple(getattr(importlib.import_module(f"layerkit.sources.{module}"), reader)(self.root / name)
                      for name in self.declaration_names for module, reader in [READERS[name]])
        return tuple(self._read_poetry_as_asked(d) for d in found)

    def _read_poetry_as_asked(self, declaration: Declaration) -> Declaration:
        """A ``poetry.lock`` read as the alpha's poetry options say (it exports without hashes by default)."""
        if self.poetry is None or declaration.kind != "poetry.lock":
            return declaration

        include_hashes, without_urls = self.poetry
        if not include_hashes:
            declaration = replace(declaration, requirements=tuple(replace(r, hashes=())
                                                                  for r in declaration.requirements))
        return replace(declaration, options=()) if without_urls else declaration

    @property
    def declaration(self) -> Declaration | None:
        """The declaration that is installed, or None for code without dependencies."""
        return self.declarations[0] if self.declarations else None

    @property
    def findings(self) -> list[Finding]:
        """Things that build but that a user should see and, most often, fix."""
        found = [Finding(Severity.WARNING, "link-outside",
                         f"{self.what}: {_shown(self, link)} is a link to {target}, outside the "
                         f"{'layer' if self.destination is Destination.LAYER else 'function'} folder: its files ship "
                         "(as the CDK ships them); move them into the folder if that is not meant")
                 for link, target in self.links_outside]
        for path in self._declaration_files:
            for line, url in secrets.literal_credentials(path.read_bytes()):
                found.append(Finding(Severity.WARNING, "literal-credential", (
                    f"{self.what}: {path.name}:{line} writes a credential into a URL ({url}), where everyone who "
                    "reads the file reads it; put the URL in the environment (PIP_INDEX_URL, UV_INDEX_URL) or write "
                    "${VAR} in the credential's place (the installer expands it): it never enters the asset hash "
                    "either way")))
        if not self.declaration_names and (variants := variant_declarations(self.root)):
            found.append(Finding(Severity.WARNING, "unread-declaration", (
                f"{self.what}: {', '.join(variants)} is not read (the kit reads requirements.txt, or a lock): nothing "
                "of it is installed; if its packages must ship, put them in requirements.txt")))
        if self.declaration is not None:
            found += [Finding(Severity.WARNING, "unpinned-requirement",
                              f"{self.what}: requirement {r.text!r} is not pinned to one version ({r.origin}); pin it "
                              "(e.g. 'name==1.2.3') or lock it, so that every build installs the same code")
                      for r in self.declaration.unpinned]
        return found

    @property
    def warnings(self) -> list[str]:
        """The messages of :attr:`findings`."""
        return [finding.message for finding in self.findings]

    def installed_copies(self) -> list[Distribution]:
        """Distributions installed into the code folder by hand (``pip install -t python/``)."""
        return read_distributions(self.code_root)

    # -- fingerprint ----------------------------------------------------------------------------------
    def inputs(self) -> list[Path]:
        """Every file that decides the built code, the folder's own and those its declarations name."""
        tracked = [*self.code_files]
        for declaration in self.declarations:
            tracked += declaration.files
            tracked += _local_inputs(declaration.requirements, self.what)
            tracked += _local_inputs(declaration.constraints, self.what)
        return sorted(set(tracked))

    def fingerprint(self, target: Target, *, bytecode: bool, provided: Mapping[str, str] | None = None,
                    options: tuple[str, ...] = ()) -> str:
        """A sha256 of everything that decides the built code, and nothing that decides how it is built;
        ``provided`` (name -> version, what a function's layers ship, so not installed again) and ``options``
        (what else changes the content, e.g. the slimming of :mod:`layerkit.installed.slim`) are part of it.

        It is the CDK asset hash: it must not change with the builder (Docker or local), the machine or where
        the repository sits, so an unchanged layer never gets a new version. Credentials never enter it: they
        live in the environment, not in these files. Reading the folder's own files, it stops on a secret in
        them (:mod:`layerkit.shipping.secrets`): they would deploy.
        """
        digest = hashlib.sha256()
        parts = ("layerkit", LAYOUT_VERSION, self.destination.value, target.runtime, target.architecture,
                 f"bytecode={bytecode}",
                 *(f"provided {name}=={version}" for name, version in sorted((provided or {}).items())), *options)
        for part in parts:
            digest.update(part.encode() + b"\0")
        for path in self.inputs():
            file_digest, head = self._read(path)
            rel = Path(_relative(path, self.root)).as_posix()
            digest.update(f"{rel}\0{mode_of(head):o}\0".encode())
            digest.update(file_digest)
        return digest.hexdigest()

    def folder_digest(self) -> str:
        """A sha256 of the folder's own files (its code and the declaration files beside it), without reading
        any declaration: what ``layerkit invoke`` compares with the synthesized assembly to tell a user that the
        folder changed since."""
        digest = hashlib.sha256(b"layerkit-folder\0")
        declarations = [self.root / name for name in (*DECLARATIONS, "Pipfile") if (self.root / name).is_file()]
        for path in sorted({*self.code_files, *declarations}):
            digest.update(Path(_relative(path, self.root)).as_posix().encode() + b"\0" + self._read(path)[0])
        return digest.hexdigest()

    @cached_property
    def _digests(self) -> dict[Path, tuple[bytes, bytes]]:
        return {}

    @cached_property
    def _own(self) -> frozenset[Path]:
        return frozenset(self.code_files)

    @cached_property
    def _declaration_files(self) -> tuple[Path, ...]:
        """The files the declarations were read from (text a user writes, where a credential may sit)."""
        return tuple(dict.fromkeys(path for declaration in self.declarations for path in declaration.files))

    def metadata(self) -> dict[str, object]:
        """What the synthesized assembly records of the folder, so that ``layerkit invoke`` can tell that it
        changed since (:meth:`folder_digest`)."""
        kind = "function" if self.destination is Destination.FUNCTION else "layer" if self.code_folder else \
            "entry-layer"
        return {"path": str(self.root), "kind": kind, "excludes": list(self.excludes),
                "digest": self.folder_digest()}

    def _read(self, path: Path) -> tuple[bytes, bytes]:
        """``(sha256, first bytes)`` of a file, read once per folder; the folder's own files are scanned for
        secrets as they are read, and one that holds a secret stops the build (:mod:`layerkit.shipping.secrets`)."""
        if (known := self._digests.get(path)) is not None:
            return known
        if path in self._declaration_files:  # a credential written into a URL never decides the asset
            data = path.read_bytes()
            self._digests[path] = found = (hashlib.sha256(secrets.without_credentials(data)).digest(), data[:4])
            return found
        scanner = secrets.Scanner() if path in self._own else None
        self._digests[path] = found = _digest(path, scanner)
        if scanner is not None and scanner.found is not None:
            raise SecretError(
                f"{self.what}: {_shown(self, path.relative_to(self.code_root).as_posix())} (line "
                f"{scanner.found.line}) holds {scanner.found.kind}, which would deploy with the code: remove it "
                "from the folder (read secrets at run time, from AWS Secrets Manager or SSM Parameter Store), "
                f"or, if it is no secret, exclude the file ({in_use().exclude})"
            )
        return found


def _refuse_declarations_in_code(code: Path, what: str, shown: str, belongs: Path) -> None:
    """A dependency file inside a layer's ``python/`` is never read (and would ship to ``/opt/python``): the
    build stops, naming where it belongs."""
    if not code.is_dir():
        return
    for name in sorted(DEPENDENCY_FILES):
        if (code / name).is_file():
            raise DeclarationError(
                f"{what}: {shown}{name} is inside {shown}, where the kit never reads a dependency file and where it "
                f"would ship to /opt/{shown}; move it to {belongs / name}, beside {shown}")


#: Suffixed requirements files that hold another set on purpose (``requirements-dev.txt``): a warning at most.
_VARIANT = re.compile(r"^requirements[-_.][\w.-]+\.txt$", re.IGNORECASE)


def _refuse_near_misses(root: Path, present: tuple[str, ...]) -> None:
    """A file whose name is almost a declaration's (``requirement.txt``, ``Requirements.txt``, ``poetry.lck``) in a
    folder that has none: the build would install nothing, silently, and the code fail on Lambda with "No module
    named ..."; it stops, naming the file and the name it needs."""
    if present:
        return

    for path in sorted(root.iterdir()):
        name = path.name
        if not path.is_file() or name in DEPENDENCY_FILES or _VARIANT.match(name):
            continue
        lowered = name.lower()
        close = [d for d in DECLARATIONS if d.lower() == lowered] or \
            difflib.get_close_matches(lowered, [d.lower() for d in DECLARATIONS], n=1, cutoff=0.85)
        if close:
            meant = next(d for d in DECLARATIONS if d.lower() == close[0])
            raise DeclarationError(f"{root / name}: the kit reads dependencies from {meant}, not {name}, so nothing "
                                   f"would be installed; rename it to {meant}")


def variant_declarations(root: Path) -> list[str]:
    """Suffixed requirements files (``requirements-dev.txt``) in a folder without a declaration: maybe meant."""
    return sorted(path.name for path in root.iterdir() if path.is_file() and _VARIANT.match(path.name))


def _shown(source: SourceFolder, rel: str) -> str:
    """A path relative to the code root as the user sees it in the folder (``python/...`` in a layer)."""
    return f"python/{rel}" if source.destination is Destination.LAYER else rel


def _digest(path: Path, scanner: Any | None) -> tuple[bytes, bytes]:
    """``(sha256, first bytes)`` of a file, read in chunks (and fed to ``scanner``)."""
    digest = hashlib.sha256()
    head = b""
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            if not head:
                head = chunk[:4]
            digest.update(chunk)
            if scanner is not None:
                scanner.feed(chunk)
    return digest.digest(), head


def _select(folder: Path, boundary: Path, what: str, excludes: tuple[str, ...],
            skip: tuple[str, ...] = ()) -> Selection:
    """The folder's files that may ship, each under Lambda's size limit (refused before it is read)."""
    selection = select(folder, boundary=boundary, what=what, excludes=excludes, skip=skip)
    for path in selection.files:
        if (size := path.stat().st_size) > MAX_UNZIPPED_BYTES:
            raise LayerSourceError(
                f"{what}: {path} is {megabytes(size)} on its own, over Lambda's limit of 250 MB for a function's "
                f"code and layers unzipped: it can never deploy; exclude it ({in_use().exclude}) and fetch it at run "
                "time (e.g. from S3), or ship the function as a container image (10 GB)"
            )
    return selection


def _relative(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, with ``..`` where it sits outside: the same wherever the repo is."""
    return os.path.relpath(path, root)


def package_files(folder: Path, what: str = "") -> list[Path]:
    """The files of a local path package that decide the wheel built from it (not what building it writes),
    read by the rules of :mod:`layerkit.shipping.selection`."""
    what = what or f"local package {folder.name}"
    return list(select(folder, boundary=folder, what=what, skip=_PACKAGE_BUILD_OUTPUT).files)


def copy_package(folder: Path, files: Iterable[Path], destination: Path) -> None:
    """Copy ``files`` of the local package ``folder`` (from :func:`package_files`) to ``destination``, at the same
    relative paths: the content and the mode, through links, so that a wheel is built from them out of tree."""
    for path in files:
        copied = destination / path.relative_to(folder)
        copied.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, copied)


def _local_inputs(requirements: tuple[Requirement, ...], what: str) -> list[Path]:
    found: list[Path] = []
    for requirement in requirements:
        if requirement.local is None:
            continue
        if requirement.local.is_dir():
            found += package_files(requirement.local, what)
        else:
            found.append(requirement.local)
    return found
