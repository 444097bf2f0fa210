"""What every dependency declaration becomes once read: requirements, constraints and installer options.

Each format (``requirements.txt``, ``uv.lock``, ``poetry.lock``, ``Pipfile.lock``, ``pyproject.toml``) has its
own reader in this package; all of them return a :class:`Declaration`, which the pin step resolves for a
target. Markers are evaluated for the target (Lambda's Linux, the runtime's Python, the function's machine),
never for the machine running the build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from layerkit.core.errors import DeclarationError
from layerkit.core.index_settings import PYPI
from layerkit.core.targets import Target
from layerkit.installed.distributions import canonical_name

#: ``name==1.2.3`` alone: the line of a pinned requirements file, read without ``packaging`` (which would add
#: 10 ms to every cached build).
_EXACT_PIN = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*==\s*([A-Za-z0-9.!+_-]+)$")


@dataclass(frozen=True)
class Requirement:
    """One requirement as declared, with where it was declared (``requirements.txt:3``) for messages."""

    text: str  # for the installer: PEP 508 (paths made absolute), without per-requirement options
    origin: str
    name: str | None = None  # canonical name; None for a local path package until it is built
    specifier: str = ""
    marker: str | None = None
    hashes: tuple[str, ...] = ()  # "sha256:<hex>"
    local: Path | None = None  # a local wheel file, or the folder of a local path package
    url: str | None = None  # a remote direct reference

    @property
    def pinned_version(self) -> str | None:
        """``1.2.3`` for ``==1.2.3`` (or ``===``); None for anything a resolver may still choose."""
        spec = self.specifier.strip()
        for operator in ("===", "=="):
            if spec.startswith(operator):
                version = spec[len(operator):].strip()
                if version and not any(c in version for c in ",*<>!~ "):
                    return version
        return None

    @property
    def pinned(self) -> bool:
        """Pinned to one distribution: an exact version, a local file or a URL."""
        return self.pinned_version is not None or self.local is not None or self.url is not None

    def applies_to(self, target: Target) -> bool:
        """Whether its marker holds on Lambda for ``target`` (no extra requested)."""
        if not self.marker:
            return True
        # lazy: packaging: ~10 ms that a pinned declaration's cache hit never spends
        from packaging.markers import Marker

        return Marker(self.marker).evaluate({**target.marker_environment(), "extra": ""})

    def line(self) -> str:
        """The requirement as a line of a requirements file, with its hashes."""
        return " ".join([self.text, *(f"--hash={h}" for h in self.hashes)])


@dataclass(frozen=True)
class Declaration:
    """A folder's dependencies as one of its files declares them."""

    kind: str  # the file that declares them: requirements.txt, uv.lock, poetry.lock, Pipfile.lock, pyproject.toml
    path: Path
    requirements: tuple[Requirement, ...] = ()
    constraints: tuple[Requirement, ...] = ()
    options: tuple[str, ...] = ()  # installer options as requirement-file lines, e.g. "--index-url https://..."
    locked: bool = False  # a complete pinned set: installed as it is, never resolved again
    files: tuple[Path, ...] = ()  # every file that was read, the declaration's own included
    require_hashes: bool = False
    warnings: tuple[str, ...] = field(default=())

    @property
    def hashed(self) -> bool:
        """Hash-checking mode, as pip enters it: any ``--hash``, or ``--require-hashes``."""
        return self.require_hashes or any(r.hashes for r in self.requirements)

    @property
    def unpinned(self) -> list[Requirement]:
        return [r for r in self.requirements if not r.pinned]

    def for_target(self, target: Target) -> list[Requirement]:
        """The requirements whose markers hold for ``target``."""
        return [r for r in self.requirements if r.applies_to(target)]

    def requirements_text(self) -> str:
        """The declaration as one requirements file: options, then requirements with their hashes."""
        return "\n".join([*self.options, *(r.line() for r in self.requirements)]) + "\n"




def index_options(urls: list[str]) -> tuple[str, ...]:
    """Installer options for the indexes a lock's packages come from, in the lock's order: PyPI stays the
    installer's default; another index is added to it, or is the only one when every package comes from it."""
    ordered = list(dict.fromkeys(url.rstrip("/") for url in urls if url))
    uses_pypi = PYPI in ordered
    others = [url for url in ordered if url != PYPI]
    return tuple(f"--{'extra-' if uses_pypi or index else ''}index-url {url}" for index, url in enumerate(others))


def parse_pep508(text: str, origin: str, base: Path) -> Requirement:
    """A PEP 508 requirement (``name[extra]>=1 ; marker`` or ``name @ url``); ``file:`` URLs become paths."""
    if pinned := _EXACT_PIN.match(text.strip()):
        name, version = canonical_name(pinned.group(1)), pinned.group(2)
        return Requirement(f"{name}=={version}", origin, name, f"=={version}")

    # lazy: packaging: ~10 ms that a pinned declaration's cache hit never spends
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as Pep508

    try:
        parsed = Pep508(text)
    except InvalidRequirement as exc:
        why = str(exc).splitlines()[0]  # (packaging adds the line and a caret below: one line here)
        raise DeclarationError(f"{origin}: cannot read requirement {text!r} ({why}); write it as 'name==1.2.3'") \
            from None
    name = canonical_name(parsed.name)
    marker = str(parsed.marker) if parsed.marker else None
    extras = f"[{','.join(sorted(parsed.extras))}]" if parsed.extras else ""
    if parsed.url:
        refuse_vcs(parsed.url, origin)
        if parsed.url.startswith("file:"):
            local = file_url_path(parsed.url, base)
            return local_requirement(local, origin, marker, name=name, extras=extras)
        tail = f" ; {marker}" if marker else ""
        return Requirement(f"{name}{extras} @ {parsed.url}{tail}", origin, name, "", marker, url=parsed.url)
    specifier = str(parsed.specifier)
    tail = f" ; {marker}" if marker else ""
    return Requirement(f"{name}{extras}{specifier}{tail}", origin, name, specifier, marker)


def refuse_vcs(url: str, origin: str) -> None:
    if url.split("+", 1)[0] in ("git", "hg", "svn", "bzr") and "+" in url.split(":", 1)[0]:
        raise DeclarationError(
            f"{origin}: {url} is a version-control requirement, which the kit cannot pin to a file: build it "
            "to a wheel (uv build --wheel) and list the wheel (./wheels/<file>.whl), or publish it to an index"
        )


def file_url_path(url: str, base: Path) -> Path:
    """The path of a ``file:`` URL; a relative one (``file:../lib``, which pip accepts) from ``base``."""
    parsed = urlparse(url)
    if parsed.netloc in ("", "localhost") and parsed.path.startswith("/"):
        return Path(unquote(parsed.path))  # a POSIX path: what url2pathname gives on Linux
    return (base / unquote(url.removeprefix("file:"))).resolve()


def local_requirement(path: Path, origin: str, marker: str | None, *, name: str | None = None,
                      extras: str = "") -> Requirement:
    """A local wheel file or local path package, checked to exist."""
    tail = f" ; {marker}" if marker else ""
    if path.is_file() and path.suffix == ".whl":
        wheel_name = canonical_name(path.name.split("-", 1)[0])
        version = path.name.split("-")[1]
        return Requirement(f"{wheel_name}{extras} @ {path.as_uri()}{tail}", origin, wheel_name, f"=={version}",
                           marker, local=path)
    if path.is_dir():
        if not (path / "pyproject.toml").is_file() and not (path / "setup.py").is_file():
            raise DeclarationError(
                f"{origin}: {path} is a folder without pyproject.toml or setup.py, so it is not a Python "
                "package; point at the package's folder (the one holding its pyproject.toml)"
            )
        return Requirement(str(path), origin, name, "", marker, local=path)
    if path.is_file():
        raise DeclarationError(
            f"{origin}: {path.name} is not a wheel; the Docker-free build installs wheels only: build it "
            "(uv build --wheel) and list the .whl, or point at the package's folder"
        )
    raise DeclarationError(f"{origin}: {path} does not exist; fix the path (relative paths start from the "
                           "folder of the file that names them)")
