"""Compiled files in a package: what each was built for, and whether Lambda can load it for a target.

A ``pip install -t python/`` run on a laptop leaves extensions built for the laptop: another CPython
(``.cpython-311-...so`` in a python3.12 layer), another operating system (a Mac's Mach-O ``.so``) or another
machine (x86_64 code in an arm64 function). None of them loads on Lambda, and the failure only shows at the
first import there. This module reads file names and headers; it never imports or runs anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from layerkit.core.targets import ARCHITECTURES, Target
from layerkit.installed.layer_paths import is_compiled

_MACHINES_BY_ELF = {machine.elf: name for name, machine in ARCHITECTURES.items()}
_MACHO_MAGICS = (b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",
                 b"\xca\xfe\xba\xbe")
_CPYTHON_TAG = re.compile(r"\.cpython-(\d)(\d+)(?:[a-z]*)-(?P<platform>[^.]+)\.so$")
_WINDOWS_TAG = re.compile(r"\.cp(\d)(\d+)-win[^.]*\.pyd$")
_GLIBC = re.compile(rb"GLIBC_(\d+)\.(\d+)")
#: Bytes of a file's head that tell its format and machine.
HEAD_BYTES = 20





@dataclass(frozen=True)
class NativeFile:
    """What a compiled file was built for, as far as its name and header tell."""

    path: str
    format: str  # "ELF", "Mach-O", "PE" or "unknown"
    architecture: str | None  # Lambda's name (x86_64, arm64) for ELF, else None
    python: str | None  # "3.11" for a .cpython-311-... extension, None when untagged or abi3

    def built_for(self) -> str:
        if self.format == "Mach-O":
            return "macOS"
        if self.format == "PE":
            return "Windows"
        if self.format != "ELF":
            return "an unknown system"
        python = f"CPython {self.python} on " if self.python else ""
        return f"{python}{self.architecture or 'another machine'} Linux"


def inspect(path: str, head: bytes) -> NativeFile:
    """Read what ``path`` (whose first :data:`HEAD_BYTES` bytes are ``head``) was built for."""
    python = None
    if match := _CPYTHON_TAG.search(path) or _WINDOWS_TAG.search(path):
        python = f"{match.group(1)}.{match.group(2)}"
    if head[:4] == b"\x7fELF" and len(head) >= 20:
        order = "little" if head[5] == 1 else "big"
        machine = _MACHINES_BY_ELF.get(int.from_bytes(head[18:20], order))
        return NativeFile(path, "ELF", machine, python)
    if head[:4] in _MACHO_MAGICS:
        return NativeFile(path, "Mach-O", None, python)
    if head[:2] == b"MZ":
        return NativeFile(path, "PE", None, python)
    return NativeFile(path, "unknown", None, python)


def misfit(native: NativeFile, target: Target) -> str | None:
    """Why ``native`` cannot load on Lambda for ``target``, or None when it can."""
    loads = native.format == "ELF" and native.architecture == target.architecture \
        and native.python in (None, target.python_version)
    return None if loads else f"is built for {native.built_for()}"


def glibc_needed(data: bytes) -> tuple[int, int] | None:
    """The newest ``GLIBC_x.y`` symbol version an ELF file asks for, or None."""
    versions = {(int(major), int(minor)) for major, minor in _GLIBC.findall(data)}
    return max(versions) if versions else None


def glibc_too_new(data: bytes, target: Target) -> tuple[int, int] | None:
    """The glibc an ELF file ``data`` needs when it is newer than the one ``target`` runs on, else None."""
    needed = glibc_needed(data)
    return needed if needed is not None and needed > target.glibc else None


def glibc_too_new_in(path: Path, target: Target) -> tuple[int, int] | None:
    """:func:`glibc_too_new` of a file, read in pieces (a large ``.so`` is never held whole)."""
    versions: set[tuple[int, int]] = set()
    tail = b""
    with open(path, "rb") as file:
        while piece := file.read(1024 * 1024):
            window = tail + piece
            versions |= {(int(major), int(minor)) for major, minor in _GLIBC.findall(window)}
            tail = window[-32:]  # a symbol version cut in two is found whole in the next window
    needed = max(versions) if versions else None
    return needed if needed is not None and needed > target.glibc else None


def misfits(paths: Iterable[str], read_head: Callable[[str], bytes], target: Target) -> list[tuple[str, str]]:
    """``(path, why)`` for every compiled file among ``paths`` that cannot load for ``target``."""
    found = []
    for path in paths:
        if is_compiled(path) and (why := misfit(inspect(path, read_head(path)), target)):
            found.append((path, why))
    return found
