"""``poetry.lock`` with its ``pyproject.toml``, read as the documented TOML it is: no poetry needed.

Installed: the packages of the ``main`` group whose markers hold for the target, at their locked versions,
with the hashes of their locked files, from the source each was locked from. A lock is fresh when its
``content-hash`` is the one poetry computes from ``pyproject.toml`` (the check behind ``poetry check --lock``).
Lock files from Poetry 1 (``lock-version`` 2.0) do not record groups, so they are refused with the fix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from layerkit.core.errors import DeclarationError
from layerkit.core.index_settings import PYPI
from layerkit.installed.distributions import canonical_name
from layerkit.sources.declaration import Declaration, Requirement, index_options, local_requirement
from layerkit.sources.pyproject import load_toml

FILE_NAME = "poetry.lock"
_REFRESH = "run 'poetry lock' in that folder (Poetry 2) and commit the new poetry.lock"

_LEGACY_KEYS = ("dependencies", "source", "extras", "dev-dependencies")
_POETRY_KEYS = (*_LEGACY_KEYS, "group")
_PROJECT_KEYS = ("requires-python", "dependencies", "optional-dependencies")


def content_hash(pyproject: dict[str, Any]) -> str:
    """The ``content-hash`` poetry records: a sha256 of the parts of ``pyproject.toml`` that decide the lock."""
    project = pyproject.get("project", {})
    poetry = pyproject.get("tool", {}).get("poetry", {})
    relevant_project = {key: project[key] for key in _PROJECT_KEYS if project.get(key) is not None}
    relevant_poetry = {
        key: poetry.get(key) for key in _POETRY_KEYS
        if poetry.get(key) is not None or (key in _LEGACY_KEYS and not relevant_project)
    }
    content: dict[str, Any] = relevant_poetry
    if relevant_project:
        content = {"project": relevant_project, "tool": {"poetry": relevant_poetry}}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _main_marker(package: dict[str, Any]) -> str | bool | None:
    """The package's marker in the main group: a string, None (always), or False (not in main)."""
    if "main" not in package.get("groups", []):
        return False
    markers = package.get("markers")
    if isinstance(markers, dict):
        return markers.get("main")
    return markers


def _requirement(package: dict[str, Any], marker: str | None, lock_path: Path, origin: str) -> Requirement:
    name = canonical_name(package["name"])
    source = package.get("source", {})
    kind = source.get("type")
    if kind in ("git", "hg"):
        raise DeclarationError(f"{origin}: {package['name']} comes from {kind} ({source.get('url')}), which the kit "
                               "cannot pin to a file; build it to a wheel and depend on the wheel, or publish it")
    if kind in ("file", "directory"):
        path = (lock_path.parent / source["url"]).resolve()
        if source.get("develop"):
            raise DeclarationError(f"{origin}: {package['name']} is an editable path dependency (develop = true), "
                                   "which cannot ship in a Lambda package; set develop = false and lock again")
        return local_requirement(path, origin, marker, name=name)
    tail = f" ; {marker}" if marker else ""
    hashes = tuple(sorted({f["hash"] for f in package.get("files", []) if f.get("hash", "").startswith("sha256:")}))
    if kind == "url":
        return Requirement(f"{name} @ {source['url']}{tail}", origin, name, "", marker, hashes, url=source["url"])
    return Requirement(f"{name}=={package['version']}{tail}", origin, name, f"=={package['version']}", marker,
                       hashes)


def read_poetry_lock(lock_path: Path) -> Declaration:
    """The main group of ``lock_path``, as pinned, hashed requirements."""
    pyproject_path = lock_path.parent / "pyproject.toml"
    if not pyproject_path.is_file():
        raise DeclarationError(f"{lock_path}: has no pyproject.toml beside it; poetry.lock belongs to a project: "
                               "restore its pyproject.toml, or declare the dependencies in requirements.txt")
    lock = load_toml(lock_path)
    metadata = lock.get("metadata", {})
    if _version_tuple(metadata.get("lock-version")) < (2, 1):
        raise DeclarationError(
            f"{lock_path}: lock-version {metadata.get('lock-version', '(none)')} does not record which group each "
            f"package belongs to; {_REFRESH}"
        )
    if metadata.get("content-hash") != content_hash(load_toml(pyproject_path)):
        raise DeclarationError(f"{lock_path}: out of date with pyproject.toml (its content-hash differs); {_REFRESH}")
    requirements = []
    sources: set[str] = set()
    for number, package in enumerate(lock.get("package", []), start=1):
        marker = _main_marker(package)
        if marker is False or (package.get("optional") and marker is None):
            continue  # a dev group's, or an extra of the project's that nobody asked for
        origin = f"{FILE_NAME} (package {number}, {package.get('name')})"
        requirements.append(_requirement(package, marker, lock_path, origin))
        source = package.get("source", {})
        sources.add(source["url"] if source.get("type") == "legacy" else PYPI if not source else "")
    return Declaration(kind=FILE_NAME, path=lock_path, requirements=tuple(requirements),
                       options=index_options(sorted(sources)), locked=True, files=(lock_path, pyproject_path))


def _version_tuple(value: object) -> tuple[int, ...]:
    """``"2.1"`` as ``(2, 1)``, so that 2.10 is newer than 2.9; anything unreadable as ``()``, older than all."""
    try:
        return tuple(int(part) for part in str(value).split("."))
    except ValueError:
        return ()
