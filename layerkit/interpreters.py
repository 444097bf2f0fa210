"""Find a CPython of an exact minor version (for a python3.12 function, a python3.12 interpreter).

A function is never run, nor its layer's bytecode compiled, by a Python of another version: the failure a
user would meet on Lambda (an ABI-tagged extension that does not load, syntax of a newer Python) must show
here too.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from layerkit.errors import MissingInterpreterError


def _probe(executable: str) -> tuple[str, str] | None:
    """(``"3.12"``, the real interpreter file): a pyenv shim or a venv link answers with what it runs."""
    script = "import os, sys; print('%d.%d' % sys.version_info[:2], os.path.realpath(sys.executable))"
    try:
        out = subprocess.run(
            [executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or " " not in out.stdout.strip():
        return None
    version, real = out.stdout.strip().split(" ", 1)
    return version, real


def _candidates(version: str) -> Iterator[str]:
    """Likely interpreters, cheapest look-up first (uv is asked only when the others have none)."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    on_path = shutil.which(f"python{version}")
    if on_path and Path(on_path).parent != pyenv_root / "shims":  # a shim runs only the selected version, slowly
        yield on_path
    versions = pyenv_root / "versions"
    if versions.is_dir():
        for prefix in sorted(versions.glob(f"{version}.*"), reverse=True):
            yield str(prefix / "bin" / f"python{version}")
    if uv := shutil.which("uv"):
        proc = subprocess.run(
            [uv, "python", "find", "--no-project", version], capture_output=True, text=True, check=False,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )
        if proc.returncode == 0 and proc.stdout.strip():
            yield proc.stdout.strip()


@functools.cache
def find_python(version: str) -> Path:
    """The path of a ``python{version}`` interpreter (PATH, then pyenv, then uv), resolved to its real file.

    Raises :class:`MissingInterpreterError` naming the ways to install one when there is none.
    """
    for candidate in _candidates(version):
        probed = _probe(candidate) if Path(candidate).is_file() else None
        if probed and probed[0] == version:
            return Path(probed[1])
    raise MissingInterpreterError(
        f"no Python {version} interpreter found (looked on PATH for python{version}, in pyenv and in uv); "
        f"install one (e.g. 'pyenv install {version}', 'uv python install {version}' or your OS's "
        f"python{version} package): a python{version} function is never run under another version"
    )
