"""``.pyc`` that Lambda uses as they are: compiled by the target's Python, hash-based, never re-checked.

pip compiles ``.pyc`` stamped with each source's modification time; the CDK CLI zips every file with a 1980
date, so on Lambda such a ``.pyc`` is stale and the module is compiled again, in memory, at every cold start.
An ``unchecked-hash`` ``.pyc`` (PEP 552) is used without looking at the source. Each one records the path the
source has on Lambda (``/opt/python/...`` or ``/var/task/...``, always with ``/``), as tracebacks show it.

The compiler is the target Python itself (a ``.pyc`` is specific to a minor version), run isolated (``-I -S``:
none of the build machine's site hooks), one process per core, each killed if the build stops.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from layerkit.core import children
from layerkit.core.errors import MissingInterpreterError
from layerkit.core.interpreters import find_python

#: PEP 552 mode, for the local build and for the Docker bundle's compileall alike.
INVALIDATION_MODE = "unchecked-hash"

_DRIVER = """
import json, py_compile, sys
failed = []
for source, shown_as in json.load(sys.stdin):
    try:
        py_compile.compile(source, dfile=shown_as, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError as error:
        failed.append([source, error.exc_type_name + ": " + str(error.exc_value).splitlines()[0]])
json.dump(failed, sys.stdout)
"""


@dataclass(frozen=True)
class Failure:
    """A source file that does not compile for the target (it ships as source, as pip leaves it)."""

    path: Path
    reason: str


def sources_of(tree: Path, shown_under: str) -> list[tuple[Path, str]]:
    """Every ``.py`` file under ``tree``, with the path Lambda shows it at (``shown_under`` + ``/`` + rel)."""
    found = []
    for folder, dirnames, filenames in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = Path(folder) / name
                found.append((path, f"{shown_under.rstrip('/')}/{path.relative_to(tree).as_posix()}"))
    return found


def compile_sources(python: Path, sources: Iterable[tuple[Path, str]], workers: int | None = None) -> list[Failure]:
    """Compile each ``(source, shown_as)`` with ``python``; returns the files that did not compile.

    Raises :class:`OSError` if a compiler process itself fails (not a source it could not compile).
    """
    jobs = [(str(path), shown) for path, shown in sources]
    if not jobs:
        return []
    count = max(1, min(workers or os.cpu_count() or 1, 8, len(jobs)))
    failures: list[Failure] = []
    # Each compiler gets its share on its standard input: no file to leave behind if the build is killed.
    processes = []
    try:
        for _ in range(count):
            processes.append(children.start([str(python), "-I", "-S", "-c", _DRIVER], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                            encoding="utf-8"))
        from concurrent.futures import ThreadPoolExecutor  # lazy: a cache hit compiles nothing (~4 ms)

        with ThreadPoolExecutor(max_workers=count) as pool:  # each pipe drained at once: none can fill and block
            outputs = list(pool.map(lambda pair: pair[1].communicate(json.dumps(jobs[pair[0]::count])),
                                    enumerate(processes)))
    except BaseException:
        for process in processes:
            children.stop(process)
        raise
    for process, (out, err) in zip(processes, outputs, strict=True):
        if process.returncode != 0:
            raise OSError(f"{python} could not compile .pyc (exit {process.returncode}): {err.strip()[-300:]}")
        failures += [Failure(Path(path), reason) for path, reason in json.loads(out or "[]")]
    return failures


def compileall_command(python: str, tree: str, shown_under: str) -> str:
    """The same compilation as a shell command, for the Docker bundle (run by the build image's Python)."""
    return (f"{python} -m compileall -q -j 0 --invalidation-mode {INVALIDATION_MODE} -s {tree} -p {shown_under} "
            f"{tree}")


#: The Python versions whose missing interpreter was already reported in this process (one synth, one app).
_WARNED: set[str] = set()


def in_ci() -> bool:
    """Whether this is a CI run: ``CI`` set, as GitHub Actions, GitLab CI, CircleCI and the others set it."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def compiler(what: str, version: str, report: Callable[[str], None], *, fix: str,
             asset_hashes: Callable[[], tuple[str, str]] | None = None) -> Path | None:
    """The Python that compiles ``what``'s ``.pyc`` (``version``, e.g. ``3.12``), or None (source only).

    Without one the bytes would depend on the machine: the same folder would be another asset (a new layer
    version) wherever a Python of that version happens to be missing. So in CI that stops the build, with the
    fix; elsewhere it is a warning, said once per process, naming both asset hashes (``asset_hashes``: with and
    without ``.pyc``).
    ``fix`` is how the user turns ``.pyc`` off where they meet the message (``bytecode=False``, ``--no-bytecode``).
    """
    try:
        return find_python(version)
    except MissingInterpreterError as error:
        if in_ci():
            raise MissingInterpreterError(
                f"{what}: {error.reason}, so its .pyc cannot be compiled; in CI (CI is set) that would make another "
                f"asset than the same folder built where Python {version} is, and a new layer version for unchanged "
                f"inputs: install Python {version} on the runner (e.g. actions/setup-python, or 'uv python install "
                f"{version}'), or set {fix} on every machine", reason=error.reason) from None
        if version in _WARNED:
            return None  # said once: every build of this runtime ships no .pyc, for the same reason
        _WARNED.add(version)
        hashes = ""
        if asset_hashes is not None:
            with_pyc, without = asset_hashes()
            hashes = (f" under asset hash {without[:12]} (with .pyc it is {with_pyc[:12]}: another version for the "
                      "same inputs)")
        report(f"warning: {what}: {error.reason}, so it ships no .pyc{hashes}, and each cold start compiles it; "
               f"install Python {version}, or set {fix} on every machine so that every machine builds the same asset")
        return None
