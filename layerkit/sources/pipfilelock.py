"""``Pipfile.lock`` with its ``Pipfile``, read as the documented JSON it is: no pipenv needed.

Installed: the ``default`` section (every package, dependencies included, already resolved by pipenv), at the
locked versions and hashes, markers evaluated for the target, from the lock's sources. Never ``develop``. A lock
is fresh when its ``_meta.hash`` is the one pipenv computes from the ``Pipfile`` (the check behind
``pipenv verify``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from layerkit.core.errors import DeclarationError
from layerkit.core.index_settings import PYPI
from layerkit.installed.distributions import canonical_name
from layerkit.sources.declaration import (
    Declaration,
    Requirement,
    index_options,
    local_requirement,
    parse_pep508,
    refuse_vcs,
)
from layerkit.sources.pyproject import load_toml

FILE_NAME = "Pipfile.lock"
_REFRESH = "run 'pipenv lock' in that folder and commit the new Pipfile.lock"
_SECTIONS = ("source", "packages", "dev-packages", "requires", "scripts", "pipfile", "pipenv", "default", "develop")
#: The source pipenv writes where the Pipfile names none: PyPI.
_DEFAULT_SOURCE = [{"name": "pypi", "url": PYPI, "verify_ssl": True}]


def pipfile_hashes(pipfile: dict[str, Any]) -> set[str]:
    """The ``_meta.hash`` pipenv would record for this Pipfile: newer pipenv canonicalizes package names
    first, older pipenv does not; a lock written by either is fresh."""
    found = set()
    for canonical in (False, True):
        def section(values: dict[str, Any], canonical: bool = canonical) -> dict[str, Any]:
            return {canonical_name(k) if canonical else k: v for k, v in values.items()}

        data = {
            "_meta": {"sources": pipfile.get("source", _DEFAULT_SOURCE), "requires": pipfile.get("requires", {})},
            "default": section(pipfile.get("packages", {})),
            "develop": section(pipfile.get("dev-packages", {})),
        }
        data.update({key: section(value) for key, value in pipfile.items() if key not in _SECTIONS})
        found.add(hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest())
    return found


def _requirement(name: str, entry: dict[str, Any], lock_path: Path) -> Requirement:
    origin = f"{FILE_NAME} (default: {name})"
    marker = entry.get("markers")
    if entry.get("editable"):
        raise DeclarationError(f"{origin}: an editable dependency cannot ship in a Lambda package; declare it "
                               "without editable = true in the Pipfile and run 'pipenv lock'")
    if "git" in entry or "hg" in entry:
        refuse_vcs(f"{'git' if 'git' in entry else 'hg'}+{entry.get('git') or entry.get('hg')}", origin)
    if "path" in entry:
        return local_requirement((lock_path.parent / entry["path"]).resolve(), origin, marker)
    extras = f"[{','.join(sorted(entry['extras']))}]" if entry.get("extras") else ""
    if "file" in entry:
        text = f"{name}{extras} @ {entry['file']}" + (f" ; {marker}" if marker else "")
    else:
        version = entry.get("version")
        if not isinstance(version, str) or not version.startswith("=="):
            raise DeclarationError(f"{origin}: has no pinned version; {_REFRESH}")
        text = f"{name}{extras}{version}" + (f" ; {marker}" if marker else "")

    requirement = parse_pep508(text, origin, lock_path.parent)
    return replace(requirement, hashes=tuple(sorted(h for h in entry.get("hashes", []) if h.startswith("sha256:"))))


def read_pipfile_lock(lock_path: Path) -> Declaration:
    """The ``default`` section of ``lock_path``, as pinned, hashed requirements."""
    pipfile_path = lock_path.parent / "Pipfile"
    if not pipfile_path.is_file():
        raise DeclarationError(f"{lock_path}: has no Pipfile beside it; restore the Pipfile, or declare the "
                               "dependencies in requirements.txt")
    try:
        lock = json.loads(lock_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DeclarationError(f"{lock_path}: not valid JSON ({exc}); {_REFRESH}") from None
    if not isinstance(lock, dict) or not isinstance(lock.get("default", {}), dict):
        raise DeclarationError(f"{lock_path}: not a Pipfile.lock (no 'default' section); {_REFRESH}")
    recorded = lock.get("_meta", {}).get("hash", {}).get("sha256")
    if recorded not in pipfile_hashes(load_toml(pipfile_path)):
        raise DeclarationError(f"{lock_path}: out of date with its Pipfile (the Pipfile changed since the lock "
                               f"was made); {_REFRESH}")
    sources = [str(source.get("url", "")) for source in lock.get("_meta", {}).get("sources", [])]
    requirements = tuple(_requirement(name, entry, lock_path) for name, entry in sorted(lock["default"].items()))
    return Declaration(kind=FILE_NAME, path=lock_path, requirements=requirements, options=index_options(sources),
                       locked=True, files=(lock_path, pipfile_path))
