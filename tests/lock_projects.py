"""Layer folders whose dependencies are locked by the real tools (uv, poetry, pipenv), against the tests' index.

Every project asks for the same thing: ``orjson<3.11`` (compiled code), ``python-dateutil<3`` (which brings
``six``), ``kit-armonly`` on aarch64 only, and a dev group (``kit-devtool``) that must never be installed. The
projects are locked while the index offers orjson 3.10.16 only; then 3.10.18 is published, so a build that
resolved again instead of installing the lock would pick it. Lock files record the index's URL (a port on
127.0.0.1), so they are made here, never committed.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

from tests.package_index import PackageIndex, fill_wheelhouse

ROOT = Path(__file__).resolve().parents[1]
LOCKTOOLS = ROOT / ".venv-locktools" / "bin"
LOCKED_ORJSON, NEWER_ORJSON = "3.10.16", "3.10.18"
PLATFORMS = [(version, f"{machine}-manylinux_2_34") for version in ("3.12", "3.13")
             for machine in ("x86_64", "aarch64")]
LAYER_MODULE = "import orjson\n\n\ndef dumps(value):\n    return orjson.dumps(value)\n"


def downloads() -> Path:
    """Wheels downloaded once per machine, between test sessions (checked by sha256 on every use)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "layerkit-tests" / "wheels"


@dataclass
class LockedProjects:
    index: PackageIndex
    wheels: Path
    uv: Path
    poetry: Path
    pipenv: Path


def publish(wheels: Path, requirements: list[str]) -> None:
    """Put the real wheels of ``requirements`` (cp312 and cp313, x86_64 and aarch64) into the index."""
    fill_wheelhouse(wheels, requirements, PLATFORMS, downloads())


def _run(command: list[str], cwd: Path, env: dict[str, str], what: str) -> None:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def _project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    (root / "python").mkdir(exist_ok=True)
    (root / "python" / f"{root.name}.py").write_text(LAYER_MODULE)
    return root


def lock_all(work: Path, index: PackageIndex, wheels: Path) -> LockedProjects:
    """Create the three projects and lock each with its own tool."""
    from layerkit.core import uv
    from layerkit.core.interpreters import find_python

    python312 = str(find_python("3.12"))
    url = index.url()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "XDG_CACHE_HOME": str(work / "tool-cache"),
           "POETRY_CACHE_DIR": str(work / "poetry-cache"), "POETRY_VIRTUALENVS_PATH": str(work / "poetry-venvs"),
           "WORKON_HOME": str(work / "pipenv-venvs"), "PIPENV_PYTHON": python312, "PIPENV_NOSPIN": "1",
           "PIPENV_YES": "1", "PIPENV_IGNORE_VIRTUALENVS": "1", "PIPENV_VERBOSITY": "-1", "PIP_CONFIG_FILE": os.devnull}
    env.pop("VIRTUAL_ENV", None)
    dependencies = '["orjson<3.11", "python-dateutil<3", "kit-armonly==1.0; platform_machine == \'aarch64\'"]'

    def project(name: str) -> str:  # the [project] table both pyproject.toml files share
        return f"""
        [project]
        name = "{name}"
        version = "0"
        requires-python = ">=3.12"
        dependencies = {dependencies}
        """

    uv_project = _project(work / "uv_layer", {"pyproject.toml": project("uv-layer") + """
        [dependency-groups]
        dev = ["kit-devtool==1.0"]
        """})
    _run([uv.binary(), "lock", "--default-index", url, "--python", python312, "--quiet"], uv_project, env, "uv lock")

    poetry_project = _project(work / "poetry_layer", {"pyproject.toml": project("poetry-layer") + f"""
        [tool.poetry]
        package-mode = false

        [tool.poetry.group.dev.dependencies]
        kit-devtool = "1.0"

        [[tool.poetry.source]]
        name = "tests"
        url = "{url}"
        priority = "primary"
        """})
    _run([str(LOCKTOOLS / "poetry"), "lock", "--no-interaction"], poetry_project, env, "poetry lock")

    pipenv_project = _project(work / "pipenv_layer", {"Pipfile": f"""
        [[source]]
        url = "{url}"
        verify_ssl = false
        name = "tests"

        [packages]
        orjson = "<3.11"
        python-dateutil = "<3"
        kit-armonly = {{version = "==1.0", markers = "platform_machine == 'aarch64'"}}

        [dev-packages]
        kit-devtool = "==1.0"

        [requires]
        python_version = "3.12"
        """})
    _run([str(LOCKTOOLS / "pipenv"), "lock"], pipenv_project, env, "pipenv lock")
    return LockedProjects(index, wheels, uv_project, poetry_project, pipenv_project)
