"""Small helpers many tests share: the command line in a child process, a file written with its folders, the ELF
machine of a compiled file, and what a failed build must leave behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: ``e_machine`` in an ELF header -> Lambda's architecture name.
ELF_MACHINES = {62: "x86_64", 183: "arm64"}


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, stdin: str | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """``layerkit ARGS...`` as a user runs it: a new process, this environment plus ``env``."""
    return subprocess.run([sys.executable, "-m", "layerkit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, input=stdin, env={**os.environ, **(env or {})})


def write_file(path: Path, text: str) -> Path:
    """``text`` at ``path``, its folders made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def quiet(_: str) -> None:
    """A progress reporter that says nothing."""


def elf_machine(data: bytes) -> str:
    """The architecture a compiled file (its first 20 bytes or more) is built for."""
    assert data[:4] == b"\x7fELF", "not an ELF file"
    return ELF_MACHINES[int.from_bytes(data[18:20], "little" if data[5] == 1 else "big")]


def assert_nothing_built(cache: Path) -> None:
    """A build that stopped left no build, no package entry and no scratch folder in the cache."""
    for kind in ("builds", "packages"):
        folder = cache / kind
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")] if folder.exists() else []
        assert entries == [], f"{kind} holds {entries}"
    assert [p for p in cache.glob("**/.tmp-*") if not p.name.endswith(".lock")] == []


def told(scope: object) -> list[tuple[str, str]]:
    """The errors the kit's constructs under ``scope`` told (``cdk synth`` prints them): (construct path,
    message), in the order they were told."""
    found = []
    for construct in scope.node.find_all():  # type: ignore[attr-defined]
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:error":
                found.append((construct.node.path, str(entry.data)))
    return found


def assert_told(scope: object, pattern: str, *, on: str | None = None) -> str:
    """The one error told under ``scope``, which matches ``pattern`` (and sits on the construct ``on``)."""
    import re

    errors = told(scope)
    assert len(errors) == 1, errors
    path, message = errors[0]
    assert re.search(pattern, message), message
    assert on is None or path == on, path
    assert "\n" not in message
    return message
