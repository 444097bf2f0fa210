"""Find a CPython of an exact minor version (for a python3.12 function, a python3.12 interpreter).

A function is never run, nor its layer's bytecode compiled, by a Python of another version: the failure a
user would meet on Lambda (an ABI-tagged extension that does not load, syntax of a newer Python) must show
here too.

Where none is installed (pyenv, PATH, uv's own), uv is asked to install one (``uv python install``), as it does
where the machine may download Pythons; where it may not (no network to the download site, or
``UV_PYTHON_DOWNLOADS=never``), the error says so. Either answer is kept for the process: the download is
tried once.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from layerkit.core import uv
from layerkit.core.errors import MissingInterpreterError


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


def _pyenv_python(version: str) -> Path | None:
    """pyenv's newest ``version.*`` build: its folder names the version, so no need to run it."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for prefix in sorted((pyenv_root / "versions").glob(f"{version}.*"), reverse=True):
        executable = prefix / "bin" / f"python{version}"
        if prefix.name.split(".")[:2] == version.split(".") and os.access(executable, os.X_OK):
            return executable.resolve()
    return None


def _candidates(version: str) -> Iterator[str]:
    """Likely interpreters to ask (uv is asked only when PATH has none)."""
    pyenv_shims = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "shims"
    on_path = shutil.which(f"python{version}")
    if on_path and Path(on_path).parent != pyenv_shims:  # a shim runs only the selected version, slowly
        yield on_path
    if uv := shutil.which("uv"):
        proc = subprocess.run(
            [uv, "python", "find", "--no-project", version], capture_output=True, text=True, check=False,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_CONFIG": "1", "NO_COLOR": "1"},
        )
        if proc.returncode == 0 and proc.stdout.strip():
            yield proc.stdout.strip()


#: How long ``uv python install`` may take: a download of ~30 MB; refused downloads fail in seconds.
INSTALL_TIMEOUT_S = 300


def _installed(version: str) -> Path | None:
    for candidate in _candidates(version):
        probed = _probe(candidate) if Path(candidate).is_file() else None
        if probed and probed[0] == version:
            return Path(probed[1])
    return None


def _uv_install(version: str) -> str | None:
    """Ask uv to install Python ``version``; None once it is installed, else why it was not."""

    print(f"layerkit: no Python {version} here: asking uv for one (uv python install {version})", file=sys.stderr)
    try:
        proc = subprocess.run([uv.binary(), "python", "install", version], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S, check=False,
                              env={**os.environ, "UV_NO_CONFIG": "1", "NO_COLOR": "1"})
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    if proc.returncode == 0:
        return None
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    return lines[-1].removeprefix("cause: ") if lines else f"uv exited with {proc.returncode}"


@functools.cache
def _find(version: str) -> Path | MissingInterpreterError:
    if pyenv := _pyenv_python(version):
        return pyenv
    if found := _installed(version):
        return found
    why = _uv_install(version)
    if why is None and (found := _installed(version)):
        return found
    reason = (f"no Python {version} here (looked in pyenv, on PATH for python{version} and in uv's; "
              f"'uv python install {version}' could not install one: {why or 'it is not found after'})")
    return MissingInterpreterError(
        f"{reason}; install one (e.g. 'pyenv install {version}' or your OS's python{version} package): a "
        f"python{version} function is never run under another version", reason=reason)


def find_python(version: str) -> Path:
    """The path of a ``python{version}`` interpreter (pyenv, then PATH, then uv's, then one uv installs),
    resolved to its real file.

    Raises :class:`MissingInterpreterError` naming the ways to install one when there is none.
    """
    found = _find(version)
    if isinstance(found, MissingInterpreterError):
        raise MissingInterpreterError(str(found), reason=found.reason)
    return found
