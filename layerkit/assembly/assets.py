"""An asset as a cloud assembly holds it (a zip, or a folder the CDK CLI zips at deploy), read as untrusted input.

A ``cdk.out`` is often an artifact of someone else's pull request; whoever runs ``layerkit check`` or ``invoke`` on
it must not have this machine's files read, measured or mounted on its behalf. So every entry of an asset is
listed here before anything else looks at it:

- a zip that is not a zip, or that names one entry twice, is one line (:class:`~layerkit.core.errors.AssemblyError`);
  a zip's symbolic-link entries are listed as links, never followed;
- a folder is walked without leaving it: a link is followed only where it resolves inside the asset folder
  (loop-safe), and a link that leads outside it, or anything that is not a regular file or a folder (a FIFO, a
  device, a socket), stops the command naming the path.

Sizes are what Lambda counts: every entry of a zip, duplicates included.
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import IO

from layerkit.core.errors import AssemblyError
from layerkit.shipping.selection import kind_of

#: How many bytes of a compiled file tell its format and machine (see :mod:`layerkit.rules.native`).
HEAD_BYTES = 64


@dataclass(frozen=True)
class Entry:
    """One entry of an asset: a file (``path`` on disk for a folder asset), or a link of a zip (``target``)."""

    name: str  # relative, with /
    size: int
    path: Path | None = None  # the file itself, for a folder asset (links already resolved inside the folder)
    link: str | None = None  # the target of a zip's symbolic-link entry




class AssetContent:
    """The entries of the asset at ``path`` (a zip file or a folder); ``what`` names it in messages."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what

    @property
    def is_zip(self) -> bool:
        return self.path.is_file()

    @cached_property
    def entries(self) -> list[Entry]:
        """Every entry, in the zip's order or sorted by name for a folder (folders themselves left out)."""
        return self._zip_entries() if self.is_zip else self._folder_entries()

    @cached_property
    def sizes(self) -> dict[str, int]:
        """Each entry's unzipped size by name (an entry named twice is refused: :meth:`check_unique`)."""
        return {entry.name: entry.size for entry in self.entries}

    @property
    def unzipped_bytes(self) -> int:
        """What Lambda counts against its 250 MB: every entry, however many times a name repeats."""
        return sum(entry.size for entry in self.entries)

    @property
    def zipped_bytes(self) -> int | None:
        return self.path.stat().st_size if self.is_zip else None

    @cached_property
    def duplicates(self) -> list[str]:
        """Names the zip holds more than once (extracted, the last would silently win)."""
        seen: set[str] = set()
        repeated = []
        for entry in self.entries:
            if entry.name in seen and entry.name not in repeated:
                repeated.append(entry.name)
            seen.add(entry.name)
        return repeated

    def check_unique(self) -> None:
        """Refuse a zip that names an entry twice: no tool the CDK uses writes one, and which copy Lambda keeps is
        not written down anywhere."""
        if self.duplicates:
            raise AssemblyError(f"{self.what}: {self.path.name} holds {self.duplicates[0]!r} more than once: a zip "
                                "that is corrupt or made to deceive; synthesize again, or rebuild it")

    def heads(self, names: list[str], count: int = HEAD_BYTES) -> dict[str, bytes]:
        """The first ``count`` bytes of each named file entry, read in one pass (a zip is opened once)."""
        if not names:
            return {}
        if not self.is_zip:
            by_name = {entry.name: entry for entry in self.entries}
            found = {}
            for name in names:
                with open(by_name[name].path or self.path / name, "rb") as file:
                    found[name] = file.read(count)
            return found
        with self._zip() as archive:
            found = {}
            for name in names:
                with archive.open(name) as member:
                    found[name] = member.read(count)
            return found

    def read(self, name: str) -> bytes:
        """The whole content of file entry ``name`` (for small files: an ELF header walk, a dist-info)."""
        if not self.is_zip:
            entry = next(entry for entry in self.entries if entry.name == name)
            return (entry.path or self.path / name).read_bytes()
        with self._zip() as archive:
            return archive.read(name)

    def open_zip(self) -> zipfile.ZipFile:
        """The zip, opened: a damaged one is one line."""
        return self._zip()

    # -- reading -------------------------------------------------------------------------------------------
    def _zip(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
            raise AssemblyError(f"{self.what}: {self.path.name} is not a readable zip ({error}); synthesize again, "
                                "or rebuild it") from None

    def _zip_entries(self) -> list[Entry]:
        with self._zip() as archive:
            found = []
            for info in archive.infolist():
                if info.is_dir():
                    continue
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    with archive.open(info) as member:
                        target = member.read(4096).decode("utf-8", errors="replace")
                    found.append(Entry(info.filename, info.file_size, link=target))
                else:
                    found.append(Entry(info.filename, info.file_size))
            return found

    def _folder_entries(self) -> list[Entry]:
        try:
            root = os.path.realpath(self.path, strict=True)
        except OSError as error:
            raise AssemblyError(f"{self.what}: {self.path} cannot be read ({error.strerror}); synthesize again") \
                from None
        if not os.path.isdir(root):
            raise AssemblyError(f"{self.what}: {self.path} is neither a zip nor a folder; synthesize again")
        found: list[Entry] = []

        def visit(directory: str, rel: str, ancestors: tuple[str, ...]) -> None:
            try:
                listed = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError as error:
                raise AssemblyError(f"{self.what}: {rel or '.'} cannot be read ({error.strerror})") from None
            for entry in listed:
                name = f"{rel}{entry.name}"
                mode = entry.stat(follow_symlinks=False).st_mode
                real = entry.path
                if stat.S_ISLNK(mode):
                    real = os.path.realpath(entry.path)
                    if not (real == root or real.startswith(root + os.sep)):
                        raise AssemblyError(
                            f"{self.what}: {name} is a link to {os.readlink(entry.path)}, outside the asset: an "
                            "assembly never makes the kit read a file outside itself; synthesize again from your "
                            "own folders")
                    try:
                        mode = os.stat(real).st_mode
                    except OSError:
                        raise AssemblyError(f"{self.what}: {name} is a link to nothing; synthesize again") from None
                if stat.S_ISDIR(mode):
                    real = os.path.realpath(real)
                    if real in ancestors:
                        raise AssemblyError(f"{self.what}: {name} is a link to a folder that holds it: the folder "
                                            "would never end; synthesize again")
                    visit(real, name + "/", (*ancestors, real))
                elif stat.S_ISREG(mode):
                    found.append(Entry(name, os.stat(real).st_size, Path(real)))
                else:
                    raise AssemblyError(f"{self.what}: {name} is {kind_of(mode)}, never code; synthesize again")

        visit(root, "", (root,))
        return found


def open_entry(entry: Entry, archive: zipfile.ZipFile | None) -> IO[bytes]:
    """A file entry's bytes, from the zip or from the folder."""
    if archive is not None:
        return archive.open(entry.name)
    assert entry.path is not None
    return open(entry.path, "rb")
