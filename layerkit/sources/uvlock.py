"""``uv.lock`` with its ``pyproject.toml``: exactly what is locked, main dependencies only.

uv itself turns the lock into pinned, hashed requirements (``uv export --frozen``: the project's main
dependencies, the extras they ask for, no dependency groups), with uv's universal markers, which the pin step
evaluates for the target. Before that the kit checks that the lock is up to date with ``pyproject.toml`` the
way ``uv lock --check`` decides it, by the requirements uv recorded at lock time; unlike ``uv lock --check`` it
needs no interpreter of the project's Python version.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from layerkit.core import uv
from layerkit.core.errors import DeclarationError
from layerkit.installed.distributions import canonical_name
from layerkit.sources.declaration import Declaration, index_options
from layerkit.sources.pyproject import load_toml
from layerkit.sources.requirements import read_requirements_text

FILE_NAME = "uv.lock"
_REFRESH = "run 'uv lock' in that folder and commit the new uv.lock"


def _requirement_key(name: str, extras: Any, specifier: str | None) -> tuple[str, frozenset[str], object]:
    return canonical_name(name), frozenset(canonical_name(e) for e in extras or ()), SpecifierSet(specifier or "")


def _declared(texts: list[str]) -> set[tuple[str, frozenset[str], object]]:
    keys = set()
    for text in texts:
        parsed = Requirement(text)
        keys.add(_requirement_key(parsed.name, parsed.extras, str(parsed.specifier)))
    return keys


_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def _locked(entries: list[dict[str, Any]]) -> set[tuple[str, frozenset[str], object]]:
    return {_requirement_key(e["name"], e.get("extras"), e.get("specifier")) for e in entries
            if not _EXTRA.search(str(e.get("marker", "")))}


def _locked_extras(entries: list[dict[str, Any]]) -> dict[str, set[tuple[str, frozenset[str], object]]]:
    """The locked requirements of each extra (``marker = "... extra == 'cli'"``)."""
    found: dict[str, set[tuple[str, frozenset[str], object]]] = {}
    for entry in entries:
        if match := _EXTRA.search(str(entry.get("marker", ""))):
            found.setdefault(canonical_name(match.group(1)), set()).add(
                _requirement_key(entry["name"], entry.get("extras"), entry.get("specifier")))
    return found


def _root_package(lock: dict[str, Any]) -> dict[str, Any] | None:
    for package in lock.get("package", []):
        source = package.get("source", {})
        if source.get("virtual") == "." or source.get("editable") == "." or source.get("directory") == ".":
            return package
    return None


def _groups(pyproject: dict[str, Any]) -> dict[str, list[str]]:
    """The project's dependency groups as uv sees them: ``[dependency-groups]``, with the older
    ``[tool.uv] dev-dependencies`` in the group ``dev`` (uv merges the two)."""
    groups = {name: [g for g in entries if isinstance(g, str)]
              for name, entries in pyproject.get("dependency-groups", {}).items()}
    legacy = pyproject.get("tool", {}).get("uv", {}).get("dev-dependencies")
    if legacy is not None:
        groups["dev"] = [*groups.get("dev", []), *legacy]
    return groups


def check_fresh(lock_path: Path, pyproject_path: Path) -> None:
    """Stop when ``pyproject.toml`` asks for something the lock was not made for, as ``uv lock --check`` decides
    it: the dependencies, the extras, the dependency groups (the older ``[tool.uv] dev-dependencies`` included),
    ``requires-python``, and uv's constraints and overrides."""
    lock = load_toml(lock_path)
    pyproject = load_toml(pyproject_path)
    project = pyproject.get("project", {})
    root = _root_package(lock)
    if root is None:
        raise DeclarationError(f"{lock_path}: holds no entry for the project of {pyproject_path.name}; {_REFRESH}")
    metadata = root.get("metadata", {})
    stale = []
    requires_dist = metadata.get("requires-dist", [])
    if _declared(project.get("dependencies", [])) != _locked(requires_dist):
        stale.append("[project] dependencies")
    extras = {canonical_name(name): _declared(entries)
              for name, entries in project.get("optional-dependencies", {}).items()}
    if extras != {name: _locked_extras(requires_dist).get(name, set()) for name in extras} or \
            set(extras) != {canonical_name(e) for e in metadata.get("provides-extras", extras)}:
        stale.append("[project] optional-dependencies")
    groups = _groups(pyproject)
    locked_groups = metadata.get("requires-dev", {})
    if set(groups) != set(locked_groups) or any(
        _declared(groups[name]) != _locked(locked_groups[name]) for name in groups
    ):
        stale.append("dependency groups")
    uv_settings = pyproject.get("tool", {}).get("uv", {})
    manifest = lock.get("manifest", {})
    for setting, recorded in (("constraint-dependencies", "constraints"), ("override-dependencies", "overrides")):
        if _declared(uv_settings.get(setting, [])) != _locked(manifest.get(recorded, [])):
            stale.append(f"[tool.uv] {setting}")
    if project.get("requires-python") and lock.get("requires-python") and \
            SpecifierSet(project["requires-python"]) != SpecifierSet(lock["requires-python"]):
        stale.append("requires-python")
    if stale:
        raise DeclarationError(
            f"{lock_path}: out of date with {pyproject_path.name} (its {' and '.join(stale)} changed since the "
            f"lock was made); {_REFRESH}"
        )


def read_uv_lock(lock_path: Path) -> Declaration:
    """The locked requirements of the project in ``lock_path``'s folder."""
    pyproject = lock_path.parent / "pyproject.toml"
    if not pyproject.is_file():
        raise DeclarationError(f"{lock_path}: has no pyproject.toml beside it; uv.lock belongs to a project: "
                               "restore its pyproject.toml, or declare the dependencies in requirements.txt")
    check_fresh(lock_path, pyproject)
    exported = uv.export_lock(lock_path.parent)
    declaration = read_requirements_text(exported, lock_path, locked=True)
    return Declaration(
        kind=FILE_NAME, path=lock_path, requirements=declaration.requirements, options=_index_options(lock_path),
        locked=True, files=(lock_path, pyproject),
    )


def _index_options(lock_path: Path) -> tuple[str, ...]:
    """The indexes the lock's packages come from (``uv export`` names only the one configured now)."""
    packages = load_toml(lock_path).get("package", [])
    return index_options(sorted({str(p.get("source", {}).get("registry", "")) for p in packages}))
