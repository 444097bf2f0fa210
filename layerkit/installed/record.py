"""A wheel's ``RECORD``, read as hostile input: every row must name a file inside the folder it was installed in.

An installer writes one ``RECORD`` per distribution, listing its files relative to the install folder. Nothing
else checks what a row says: a wheel can carry a second ``*.dist-info`` as plain data (in its
``<name>.data/purelib/``) whose ``RECORD`` names ``/etc/passwd``, ``../../etc/hostname`` or
``/proc/self/environ``, and whatever reads the rows (to zip, to slim, to copy) would reach this machine's
files. :func:`rows` refuses any row that is not a plain relative path inside the folder, and any that leads out
of it through a link.

Only the standard library: this module also runs inside the Docker builder's container (:mod:`layerkit.installed.slim`).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path


class UnsafeRecordError(ValueError):
    """A ``RECORD`` row that names a file outside the install folder."""

    def __init__(self, dist_info: str, row: str, why: str) -> None:
        super().__init__(f"{dist_info}/RECORD names {row!r}, {why}")
        self.dist_info, self.row, self.why = dist_info, row, why


@dataclass(frozen=True)
class Row:
    path: str  # relative to the install folder, with /
    digest: str  # "sha256=..." or "" (RECORD itself)
    size: str


def unsafe(path: str) -> str | None:
    """Why ``path`` (a zip member or a ``RECORD`` row) is not a plain relative path, or None when it is one."""
    if not path:
        return "an empty path"
    if "\\" in path:
        return "a path with a backslash"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "an absolute path"
    parts = path.split("/")
    if ".." in parts:
        return "a path that climbs out with '..'"
    if any(part in ("", ".") for part in parts[:-1]) or parts[-1] in ("", ".", ".."):
        return "a path with an empty part"
    if "\0" in path:
        return "a path with a NUL character"
    return None


def rows(site: Path, dist_info: str) -> list[Row]:
    """The rows of ``site/dist_info/RECORD``, each checked to name a file inside ``site``.

    Raises :class:`UnsafeRecordError` for the first row that does not.
    """
    text = (site / dist_info / "RECORD").read_text(encoding="utf-8")
    found = []
    root = os.path.realpath(site)
    # Resolved once per folder, not per row: a package of thousands of files has a few hundred folders, and a
    # full realpath of every row was a tenth of a heavy layer's build.
    real_folders: dict[str, str] = {}
    for fields in csv.reader(text.splitlines()):
        if not fields:
            continue
        path = fields[0]
        if why := unsafe(path):
            raise UnsafeRecordError(dist_info, path, f"{why}: a file outside the folder it was installed in")
        found.append(Row(path, fields[1] if len(fields) > 1 else "", fields[2] if len(fields) > 2 else ""))
        full = os.path.join(site, path)
        try:
            is_link = stat.S_ISLNK(os.lstat(full).st_mode)
        except OSError:
            is_link = None  # not there: nothing of this machine is read through it
        if is_link is None:
            continue
        if is_link:
            real = os.path.realpath(full)
        else:
            folder, _, name = path.rpartition("/")
            if folder not in real_folders:
                real_folders[folder] = os.path.realpath(os.path.join(site, folder))
            real = os.path.join(real_folders[folder], name)
        if not (real == root or real.startswith(root + os.sep)):
            raise UnsafeRecordError(dist_info, path, f"which leads to {real} through a link: a file outside the "
                                                     "folder it was installed in")
    return found


def text_of(records: list[Row]) -> str:
    """``records`` as a ``RECORD`` file (CSV, ``\\n`` line ends, as installers write it)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in records:
        writer.writerow([row.path, row.digest, row.size])
    return out.getvalue()


def digest_of(path: Path) -> str:
    """A file's hash as ``RECORD`` writes it: ``sha256=`` and unpadded urlsafe base64."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def replace(site: Path, dist_info: str, records: list[Row]) -> None:
    """Write a new ``RECORD``, replacing the file rather than editing it (an installed file may be a hard link
    into an installer's cache)."""
    target = site / dist_info / "RECORD"
    partial = target.with_name("RECORD.layerkit")
    partial.write_text(text_of(records), encoding="utf-8")
    partial.replace(target)
