"""Deterministic zip files: the same files give the same bytes, on any machine, at any time, on any core count.

Entries are sorted by name, every folder has its entry, every date is 1980-01-01 (as the CDK CLI writes
them), modes follow the content (``0755`` for ELF files and ``#!`` scripts, else ``0644``), and each file is
deflated at level 6 by libdeflate (the ``deflate`` package, pinned: three times zlib's speed, smaller output,
and it releases the GIL, so threads use every core). A member compressed once (in the package cache) is copied
into a zip as the deflated bytes it is, never compressed again: the same bytes as compressing it here.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

#: The CDK CLI's date for asset zips; in MS-DOS format (1980-01-01 00:00:00).
DOS_DATE, DOS_TIME = (0 << 9) | (1 << 5) | 1, 0
FILE_MODE, EXECUTABLE_MODE, DIR_MODE = 0o644, 0o755, 0o755
LEVEL = 6
_VERSION = 20  # PKZIP 2.0: deflate and folders
STORED, DEFLATED = 0, 8  # compression methods
_UNIX = 3


@dataclass(frozen=True)
class Member:
    """A file as it is stored in a zip: its name, mode, CRC, size, and deflated bytes."""

    name: str
    mode: int
    crc: int
    size: int
    data: bytes  # raw deflate stream


def mode_of(head: bytes) -> int:
    """``0755`` for compiled code and scripts, ``0644`` for the rest: the same on every build machine."""
    return EXECUTABLE_MODE if head.startswith((b"\x7fELF", b"#!")) else FILE_MODE


def compress(name: str, data: bytes) -> Member:
    """``data`` as the zip member ``name``."""
    import deflate

    return Member(name, mode_of(data[:4]), zlib.crc32(data), len(data), deflate.deflate_compress(data, LEVEL))


def compress_files(files: Iterable[tuple[str, Path]], workers: int | None = None) -> list[Member]:
    """Each ``(name, path)`` compressed, on ``workers`` threads (libdeflate releases the GIL): order kept."""
    items = list(files)

    def one(item: tuple[str, Path]) -> Member:
        return compress(item[0], item[1].read_bytes())

    if len(items) < 2 or workers == 1:
        return [one(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor  # here: a cache hit never compresses

    with ThreadPoolExecutor(max_workers=workers or min(os.cpu_count() or 1, 8)) as pool:
        return list(pool.map(one, items, chunksize=16))


def read_members(path: Path) -> list[Member]:
    """The members of a zip this module wrote, with their deflated bytes as stored (folders left out)."""
    import zipfile

    members = []
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        for info in archive.infolist():
            if info.is_dir():
                continue
            raw.seek(info.header_offset)
            header = raw.read(30)
            name_length, extra_length = struct.unpack("<HH", header[26:30])
            raw.seek(info.header_offset + 30 + name_length + extra_length)
            members.append(Member(info.filename, (info.external_attr >> 16) & 0o777, info.CRC, info.file_size,
                                  raw.read(info.compress_size)))
    return members


class _HashingWriter:
    """A file that hashes what is written to it, so that a zip is never read back to learn its sha256."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes | bytearray) -> None:
        self._raw.write(data)
        self.digest.update(data)
        self.size += len(data)

    def tell(self) -> int:
        return self.size


def write_zip(destination: Path, members: Iterable[Member]) -> tuple[int, str]:
    """Write ``members`` (and an entry for each of their folders) to ``destination``, sorted by name; return the
    zip's size in bytes and its sha256."""
    files = {member.name: member for member in members}
    folders = {name[: index + 1] for name in files for index, char in enumerate(name) if char == "/"}
    entries: list[tuple[str, Member | None]] = sorted([*files.items(), *((f, None) for f in folders)])
    central = bytearray()
    with open(destination, "wb") as raw:
        out = _HashingWriter(raw)
        for name, member in entries:
            encoded = name.encode("utf-8")
            flags = 0 if encoded.isascii() else 0x800  # bit 11: the name is UTF-8
            offset = out.tell()
            if member is None:
                method, crc, compressed, size, data = STORED, 0, 0, 0, b""
                attributes = ((stat.S_IFDIR | DIR_MODE) << 16) | 0x10  # and the MS-DOS folder flag
            else:
                method, crc, data = DEFLATED, member.crc, member.data
                compressed, size = len(data), member.size
                attributes = (stat.S_IFREG | member.mode) << 16
            out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, _VERSION, flags, method, DOS_TIME, DOS_DATE, crc,
                                  compressed, size, len(encoded), 0) + encoded)
            out.write(data)
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (_UNIX << 8) | _VERSION, _VERSION, flags,
                                   method, DOS_TIME, DOS_DATE, crc, compressed, size, len(encoded), 0, 0, 0, 0,
                                   attributes, offset) + encoded
        start = out.tell()
        out.write(central)
        count = len(entries)
        if count > 0xFFFF:  # zip64 end records: only the entry count needs them (a layer is under 250 MB)
            end = out.tell()
            out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, (_UNIX << 8) | 45, 45, 0, 0, count, count,
                                  len(central), start))
            out.write(struct.pack("<IIQI", 0x07064B50, 0, end, 1))
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF),
                              len(central), start, 0))
    return out.size, out.digest.hexdigest()


def asset_sizes(asset: Path) -> dict[str, int]:
    """Each file's unzipped size in an asset as the CDK stages it: a zip, or a folder the CLI zips later."""
    import zipfile

    if asset.is_file():
        with zipfile.ZipFile(asset) as archive:
            return {info.filename: info.file_size for info in archive.infolist() if not info.is_dir()}
    return {p.relative_to(asset).as_posix(): p.stat().st_size for p in asset.rglob("*") if p.is_file()}


def unzipped_size(asset: Path) -> int:
    """Bytes the asset takes once extracted, as Lambda counts against its 250 MB limit."""
    return sum(asset_sizes(asset).values())
