"""Extracting a zip or copying an asset's files into a folder without a single write outside it.

Every zip the kit extracts was written by someone else (a cloud assembly handed to ``layerkit invoke``, a
downloaded layer) or read back from a cache another process could touch, so each entry is placed as an
attacker's would be: a name that is absolute or climbs out (:func:`layerkit.installed.record.unsafe`) is
refused, no step of a path goes through a link (a link an earlier entry made is never followed, it stops the
extraction), and a file is opened with ``O_NOFOLLOW | O_EXCL`` after whatever stood at its path is removed. A
later entry replaces an earlier one's file, as Lambda lays a later layer over an earlier one.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
import zlib
from pathlib import Path
from typing import IO

from layerkit.core.errors import LayerkitError, UnsafeContentError
from layerkit.installed.record import unsafe

_PIECE = 1024 * 1024


class Extraction:
    """Extractions into ``destination``; ``what`` names the content in messages, ``into`` where it lands
    ("/opt or /var/task"), and ``error`` is the kind of error its caller reports."""

    def __init__(self, destination: Path, what: str, *, into: str,
                 error: type[LayerkitError] = UnsafeContentError) -> None:
        self.destination = destination
        self.what = what
        self.into = into
        self.error = error

    def folders(self, name: str, parts: list[str]) -> Path:
        """``destination/parts...`` as folders, made where missing; a file an earlier entry left where a folder
        goes is replaced; a link there stops it (writing under it would write through the link)."""
        current = self.destination
        for index, part in enumerate(parts):
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                os.mkdir(current)
                continue
            if stat.S_ISLNK(mode):
                raise self.error(f"{self.what}: entry {name!r} lies under {'/'.join(parts[:index + 1])!r}, which is "
                                 "a link there: extracting it would write through the link; rebuild it without the "
                                 "link")
            if not stat.S_ISDIR(mode):
                os.unlink(current)  # a later entry's folder replaces an earlier one's file
                os.mkdir(current)
        return current

    def place(self, name: str, *, folder: bool = False) -> Path:
        """The path of entry ``name``, its folders made (:meth:`folders`); for a file, whatever stood at that path
        is removed first. No step goes through a link: nothing is written outside ``destination``."""
        if why := unsafe(name):
            raise self.error(f"{self.what}: entry {name!r} is {why}: it would land outside {self.into}; such an "
                             "asset is broken or hostile, so it is not used")
        parts = name.split("/")
        if folder:
            return self.folders(name, parts)
        target = self.folders(name, parts[:-1]) / parts[-1]
        try:
            mode = os.lstat(target).st_mode
        except FileNotFoundError:
            return target
        if stat.S_ISDIR(mode):
            shutil.rmtree(target)
        else:
            os.unlink(target)
        return target

    def write(self, name: str, source: IO[bytes], executable: bool) -> None:
        """Entry ``name`` with the bytes of ``source``, created anew (never through a link)."""
        descriptor = os.open(self.place(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o755 if executable else 0o644)
        with os.fdopen(descriptor, "wb") as out:
            shutil.copyfileobj(source, out, _PIECE)

    def zip(self, archive: zipfile.ZipFile, *, links: bool = True) -> None:
        """Every entry of ``archive``, with the modes it records (an executable in ``/opt/bin`` stays
        executable); its links as links (never followed here), or refused with ``links`` False."""
        try:
            for info in archive.infolist():
                if info.is_dir():
                    self.place(info.filename.rstrip("/"), folder=True)
                    continue
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    if not links:
                        raise self.error(f"{self.what}: entry {info.filename!r} is a link, which this content "
                                         "never holds; rebuild it")
                    with archive.open(info) as member:
                        os.symlink(member.read(4096).decode("utf-8", errors="replace"), self.place(info.filename))
                    continue
                with archive.open(info) as member:
                    self.write(info.filename, member, bool(mode & 0o111))
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise self.error(f"{self.what}: {Path(str(archive.filename)).name} is damaged ({error}); build or "
                             "synthesize it again") from None


def extract_zip(path: Path, destination: Path, what: str, *, into: str) -> None:
    """The zip at ``path`` laid out in ``destination`` (see :class:`Extraction`)."""
    try:
        with zipfile.ZipFile(path) as archive:
            Extraction(destination, what, into=into).zip(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise UnsafeContentError(f"{what}: {path.name} cannot be read ({error}); build it again") from None
