"""``pyproject.toml``: the ``[project]`` dependencies of a folder that has no lock file.

They are resolved for the target at build time, like an unpinned ``requirements.txt`` (with the same
warning). A ``pyproject.toml`` that declares dependencies another way (``[tool.poetry.dependencies]``)
without its lock file is refused: the kit never builds a layer that silently lacks them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from layerkit.core.errors import DeclarationError
from layerkit.sources.declaration import Declaration, parse_pep508

FILE_NAME = "pyproject.toml"


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file, or an error naming it and the parser's complaint."""
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise DeclarationError(f"{path}: not valid TOML ({exc}); fix the file") from None
    except UnicodeDecodeError:
        raise DeclarationError(f"{path}: not UTF-8 text; save it as UTF-8") from None


def project_dependencies(data: dict[str, Any], path: Path) -> list[str] | None:
    """``[project] dependencies`` (None when the table or the key is absent)."""
    project = data.get("project")
    if not isinstance(project, dict) or "dependencies" not in project:
        return None
    dependencies = project["dependencies"]
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise DeclarationError(f"{path}: [project] dependencies must be a list of strings such as 'orjson==3.10.18'")
    return dependencies


def declares_dependencies(path: Path) -> bool:
    """Whether ``pyproject.toml`` names dependencies, in ``[project]`` or in a tool's own table."""
    data = load_toml(path)
    poetry = data.get("tool", {}).get("poetry", {})
    poetry_deps = {k for k in poetry.get("dependencies", {}) if k.lower() != "python"} if isinstance(poetry, dict) \
        else set()
    return bool(project_dependencies(data, path) or poetry_deps)


def read_pyproject(path: Path) -> Declaration:
    """The ``[project]`` dependencies of ``path``, to be resolved for the target."""
    data = load_toml(path)
    dependencies = project_dependencies(data, path)
    if dependencies is None:
        poetry = data.get("tool", {}).get("poetry", {})
        if isinstance(poetry, dict) and any(k.lower() != "python" for k in poetry.get("dependencies", {})):
            raise DeclarationError(
                f"{path}: [tool.poetry.dependencies] declares dependencies but there is no poetry.lock beside it; "
                "run 'poetry lock' in that folder"
            )
        return Declaration(kind=FILE_NAME, path=path, files=(path,))
    requirements = tuple(
        parse_pep508(text, f"{FILE_NAME} [project] dependencies", path.parent) for text in dependencies
    )
    return Declaration(kind=FILE_NAME, path=path, requirements=requirements, files=(path,))
