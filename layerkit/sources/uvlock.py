"""``uv.lock`` with its ``pyproject.toml``: exactly what is locked, main dependencies only.

uv itself turns the lock into pinned, hashed requirements (``uv export --frozen``: the project's main
dependencies, the extras they ask for, no dependency groups), with uv's universal markers, which the pin step
evaluates for the target. Before that the kit checks that the lock is up to date with ``pyproject.toml`` the
way ``uv lock --check`` decides it, by the requirements uv recorded at lock time; unlike ``uv lock --check`` it
needs no interpreter of the project's Python version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from layerkit.errors import DeclarationError
from layerkit.installed import canonical_name
from layerkit.sources.declaration import Declaration, index_options
from layerkit.sources.pyproject import load_toml
from layerkit.sources.requirements import read_requirements_text

FILE_NAME = "uv.lock"
_REFRESH = "run 'uv lock' in that folder and commit the new uv.lock"


def _requirement_key(name: str, extras: Any, specifier: str | None) -> tuple[str, frozenset[str], object]:
    from packaging.specifiers import SpecifierSet
    return canonical_name(name), frozenset(canonical_name(e) for e in extras or ()), SpecifierSet(specifier or "")


def _declared(texts: list[str]) -> set[tuple[str, frozenset[str], object]]:
    from packaging.requirements import Requirement

    keys = set()
    for text in texts:
        parsed = Requirement(text)
        keys.add(_requirement_key(parsed.name, parsed.extras, str(parsed.specifier)))
    return keys


def _locked(entries: list[dict[str, Any]]) -> set[tuple[str, frozenset[str], object]]:
    return {_requirement_key(e["name"], e.get("extras"), e.get("specifier")) for e in entries
            if "extra ==" not in str(e.get("marker", ""))}


def _root_package(lock: dict[str, Any]) -> dict[str, Any] | None:
    for package in lock.get("package", []):
        source = package.get("source", {})
        if source.get("virtual") == "." or source.get("editable") == "." or source.get("directory") == ".":
            return package
    return None


def check_fresh(lock_path: Path, pyproject_path: Path) -> None:
    """Stop when ``pyproject.toml`` asks for something the lock was not made for."""
    lock = load_toml(lock_path)
    pyproject = load_toml(pyproject_path)
    project = pyproject.get("project", {})
    root = _root_package(lock)
    if root is None:
        raise DeclarationError(f"{lock_path}: holds no entry for the project of {pyproject_path.name}; {_REFRESH}")
    metadata = root.get("metadata", {})
    stale = []
    if _declared(project.get("dependencies", [])) != _locked(metadata.get("requires-dist", [])):
        stale.append("[project] dependencies")
    groups = pyproject.get("dependency-groups", {})
    locked_groups = metadata.get("requires-dev", {})
    if set(groups) != set(locked_groups) or any(
        _declared([g for g in groups[name] if isinstance(g, str)]) != _locked(locked_groups[name]) for name in groups
    ):
        stale.append("[dependency-groups]")
    if project.get("requires-python") and lock.get("requires-python"):
        from packaging.specifiers import SpecifierSet

        if SpecifierSet(project["requires-python"]) != SpecifierSet(lock["requires-python"]):
            stale.append("requires-python")
    if stale:
        raise DeclarationError(
            f"{lock_path}: out of date with {pyproject_path.name} (its {' and '.join(stale)} changed since the "
            f"lock was made); {_REFRESH}"
        )


def read_uv_lock(lock_path: Path) -> Declaration:
    """The locked requirements of the project in ``lock_path``'s folder."""
    from layerkit import uv

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
