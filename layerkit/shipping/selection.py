"""What of a user's folder may ship: the never-deploy list, exclude patterns, and one rule for links.

A layer's ``python/`` and a function's folder are read through :func:`select`, and nothing else of them ever
reaches a zip:

- **Never deployed**, at any depth, in layers and functions alike: :data:`NEVER_DEPLOY`, AWS SAM's list of
  names its builder never copies (``aws_lambda_builders/workflows/python_pip/workflow.py``, ``EXCLUDED_FILES``:
  ``.env``, virtual environments, editor and tool folders, coverage reports...) and a few more the CDK's
  projects leave beside the code (``cdk.out``, ``node_modules``). SAM also drops ``*.so``; the kit keeps them
  and checks what each was built for (:mod:`layerkit.rules.native`).
- **Excludes**: glob patterns a construct adds (``asset_excludes``), matched against the path relative to the
  folder and against each of its parts.
- **Only regular files and folders.** A link to a file and a link to a folder are treated alike: followed,
  and fingerprinted by the content they reach, so a shared package linked into a folder ships as the CDK ships
  it. A link that leads outside the entry folder ships with a warning naming it and its target (monorepos link
  shared code, and the user should see it). A link that loops, dangles, or reaches anything but a regular file
  or folder (``/proc``, ``/dev``, a socket, a FIFO) stops the build naming the link: its bytes would be this
  machine's state, not code.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from layerkit.core.errors import LayerSourceError
from layerkit.core.spelling import in_use

#: Names that never deploy from a user's folder, at any depth (fnmatch patterns, case-sensitive).
NEVER_DEPLOY = (
    # AWS SAM's builder's EXCLUDED_FILES (aws-lambda-builders 1.68), but for *.so (checked, not dropped)
    ".aws-sam", ".chalice", ".git", ".gitignore", "*.pyc", "__pycache__", ".Python", "*.egg-info", "*.egg",
    "pip-log.txt", "pip-delete-this-directory.txt", "htmlcov", ".tox", ".nox", ".coverage", ".cache",
    ".pytest_cache", ".python-version", ".mypy_cache", ".dmypy.json", ".pyre", ".env", ".venv", "venv",
    "venv.bak", "env.bak", "ENV", "env", ".vscode", ".idea",
    # beside them: the CDK's output, Node's packages, other tools' caches, dotenv variants, other VCS folders
    "cdk.out", "node_modules", ".ruff_cache", ".hypothesis", ".DS_Store", "*.pyo", ".env.*", ".coverage.*",
    ".hg", ".svn",
)

#: Where a link must never lead: the machine's pseudo-file systems, whose "files" are its live state.
_PSEUDO_ROOTS = ("/proc", "/sys", "/dev")


@dataclass(frozen=True)
class Selection:
    """The files of a folder that may ship, and the links among them that lead outside the entry folder."""

    files: tuple[Path, ...]  # each under the folder (through links as they sit), sorted by relative path
    outside: tuple[tuple[str, str], ...] = ()  # (link, relative to the folder; its target)


def never_deployed(name: str, patterns: Iterable[str] = NEVER_DEPLOY) -> bool:
    """Whether a file or folder called ``name`` is on the never-deploy list (or matches ``patterns``)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def excluded(rel: str, patterns: Iterable[str]) -> bool:
    """Whether the relative path ``rel`` (``a/b/c.py``) matches an exclude pattern, whole or by one part."""
    parts = rel.split("/")
    return any(fnmatch.fnmatch(rel, pattern) or any(fnmatch.fnmatch(part, pattern) for part in parts)
               for pattern in patterns)


def kind_of(mode: int) -> str:
    """What a file that is no regular file is (a FIFO, a socket, a device), in a message's words."""
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return name
    return "not a regular file"


def select(folder: Path, *, boundary: Path, what: str, excludes: Iterable[str] = (),
           skip: Iterable[str] = (), never_deploy: Iterable[str] = NEVER_DEPLOY) -> Selection:
    """The files of ``folder`` that may ship (see the module's rules). ``boundary`` is the entry folder: links
    leading outside it are reported. ``skip`` adds names to ``never_deploy`` for this walk (``()`` reads a folder
    the CDK ships whole, such as a prebuilt asset)."""
    patterns = (*never_deploy, *skip)
    excludes = tuple(excludes)
    inside = os.path.realpath(boundary)
    files: list[tuple[str, Path]] = []
    outside: list[tuple[str, str]] = []

    def visit(directory: Path, rel: str, ancestors: tuple[str, ...]) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as error:
            raise LayerSourceError(f"{what}: cannot read {directory} ({error.strerror}); fix its permissions") \
                from None
        for entry in entries:
            child_rel = f"{rel}{entry.name}"
            if never_deployed(entry.name, patterns) or excluded(child_rel, excludes):
                continue
            path = directory / entry.name
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                mode, real = _follow(path, ancestors, what)
                if not (real == inside or real.startswith(inside + os.sep)):
                    outside.append((child_rel, real))
            else:
                real = os.path.realpath(path) if stat.S_ISDIR(mode) else ""
            if stat.S_ISDIR(mode):
                visit(path, child_rel + "/", (*ancestors, real))
            elif stat.S_ISREG(mode):
                files.append((child_rel, path))
            else:
                raise LayerSourceError(f"{what}: {path} is {kind_of(mode)}; only regular files and folders ship: "
                                       f"remove it, or exclude it ({in_use().exclude})")

    visit(folder, "", (os.path.realpath(folder),))
    files.sort(key=lambda item: item[0])
    return Selection(tuple(path for _, path in files), tuple(outside))


def _follow(link: Path, ancestors: tuple[str, ...], what: str) -> tuple[int, str]:
    """``(mode of what the link reaches, its real path)``, or the error that stops the build."""
    real = os.path.realpath(link)
    target = os.readlink(link)
    if any(real == root or real.startswith(root + "/") for root in _PSEUDO_ROOTS):
        raise LayerSourceError(f"{what}: {link} is a link to {target} ({real}), a pseudo-file of this machine whose "
                               "bytes are its live state, never code: remove the link")
    try:
        mode = os.stat(real).st_mode
    except OSError:
        raise LayerSourceError(f"{what}: {link} is a link to {target}, which does not exist; fix or remove the "
                               "link") from None
    if stat.S_ISDIR(mode) and real in ancestors:
        raise LayerSourceError(f"{what}: {link} is a link to {target}, a folder that holds the link itself, so the "
                               "folder would never end; remove the link")
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise LayerSourceError(f"{what}: {link} is a link to {target}, which is {kind_of(mode)}; only regular files "
                               "and folders ship: remove the link")
    return mode, real
