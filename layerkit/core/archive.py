"""Deterministic zip files: the same files give the same bytes, on any machine, at any time, on any core count.

Entries are sorted by name, every folder has its entry, every date is 1980-01-01 (as the CDK CLI writes
them), modes follow the content (``0755`` for ELF files and ``#!`` scripts, else ``0644``), and each file is
deflated at level 6 by libdeflate (the ``deflate`` package, pinned: three times zlib's speed, smaller output,
and it releases the GIL, so threads use every core). A member compressed once (in the package cache) is copied
into a zip as the deflated bytes it is, never compressed again: the same bytes as compressing it here.

Memory stays bounded whatever a file's size: a file over :data:`STREAM_BYTES` is deflated by zlib in pieces into
a spill file, and its deflated bytes are copied from there (or from the zip that holds them) in pieces; a smaller
one is read whole. Which of the two a file gets depends on its size alone, so the bytes stay the same. Every
member name is a plain relative path (:func:`layerkit.installed.record.unsafe`): a zip the kit writes never holds
one that would land outside the folder it is extracted into.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from layerkit.core import progress
from layerkit.core.errors import UnsafeContentError
from layerkit.installed.record import unsafe

#: The CDK CLI's date for asset zips; in MS-DOS format (1980-01-01 00:00:00).
DOS_DATE, DOS_TIME = (0 << 9) | (1 << 5) | 1, 0
FILE_MODE, EXECUTABLE_MODE, DIR_MODE = 0o644, 0o755, 0o755
LEVEL = 6
_VERSION = 20  # PKZIP 2.0: deflate and folders
STORED, DEFLATED = 0, 8  # compression methods
_UNIX = 3
#: Files larger than this are deflated in pieces and kept on disk (memory stays bounded); smaller ones in memory.
STREAM_BYTES = 16 * 1024 * 1024
_PIECE = 1024 * 1024


@dataclass(frozen=True)
class Stored:
    """Deflated bytes kept in a file, not in memory: ``length`` bytes at ``offset`` of ``path``."""

    path: Path
    offset: int
    length: int

    def pieces(self) -> Iterator[bytes]:
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            left = self.length
            while left > 0:
                piece = file.read(min(_PIECE, left))
                if not piece:
                    raise OSError(f"{self.path} ends {left} bytes early")
                left -= len(piece)
                yield piece


@dataclass(frozen=True)
class Member:
    """A file as it is stored in a zip: its name, mode, CRC, size, and deflated bytes (in memory, or on disk)."""

    name: str
    mode: int
    crc: int
    size: int
    data: bytes | Stored  # raw deflate stream

    @property
    def compressed_size(self) -> int:
        return self.data.length if isinstance(self.data, Stored) else len(self.data)

    def pieces(self) -> Iterator[bytes]:
        if isinstance(self.data, Stored):
            yield from self.data.pieces()
        else:
            yield self.data


def mode_of(head: bytes) -> int:
    """``0755`` for compiled code and scripts, ``0644`` for the rest: the same on every build machine."""
    return EXECUTABLE_MODE if head.startswith((b"\x7fELF", b"#!")) else FILE_MODE


def compress(name: str, data: bytes) -> Member:
    """``data`` as the zip member ``name``."""
    import deflate  # lazy: a cache hit never compresses

    return Member(name, mode_of(data[:4]), zlib.crc32(data), len(data), deflate.deflate_compress(data, LEVEL))


def compress_file(name: str, path: Path, spill_dir: Path | None) -> Member:
    """The file at ``path`` as the zip member ``name``: read whole when small, else deflated in pieces into a file
    of ``spill_dir`` (which must then be given, and outlive the member)."""
    size = path.stat().st_size
    if size <= STREAM_BYTES:
        return compress(name, path.read_bytes())
    if spill_dir is None:
        raise ValueError(f"{path} is {size} bytes: compressing it needs a folder to spill to")
    spill_dir.mkdir(parents=True, exist_ok=True)
    spill = spill_dir / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}-{os.urandom(4).hex()}.deflate"
    crc, head, read = 0, b"", 0
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
    with open(path, "rb") as source, open(spill, "wb") as out:
        while piece := source.read(_PIECE):
            head = head or piece[:4]
            crc = zlib.crc32(piece, crc)
            read += len(piece)
            out.write(compressor.compress(piece))
        out.write(compressor.flush())
        length = out.tell()
    return Member(name, mode_of(head), crc, read, Stored(spill, 0, length))


def compress_files(files: Iterable[tuple[str, Path]], workers: int | None = None,
                   spill_dir: Path | None = None, what: str | None = None) -> list[Member]:
    """Each ``(name, path)`` compressed, on ``workers`` threads (libdeflate releases the GIL): order kept. A file
    over :data:`STREAM_BYTES` is deflated in pieces into ``spill_dir``. ``what`` names the work on a progress bar
    (:mod:`.progress`)."""
    items = list(files)
    bar = progress.Bar(f"{what}: compressing", len(items)) if what else None

    def one(item: tuple[str, Path]) -> Member:
        member = compress_file(item[0], item[1], spill_dir)
        if bar is not None:
            bar.advance()
        return member

    if len(items) < 2 or workers == 1:
        return [one(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor  # lazy: a cache hit never compresses

    with ThreadPoolExecutor(max_workers=workers or min(os.cpu_count() or 1, 8)) as pool:
        return list(pool.map(one, items, chunksize=16))


def read_members(path: Path) -> list[Member]:
    """The members of a zip this module wrote, with their deflated bytes as stored (folders left out); a large
    member's bytes stay in the zip (:class:`Stored`), read when it is copied."""
    import zipfile  # lazy: 4 ms a cache hit of a build never spends

    members = []
    with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
        for info in archive.infolist():
            if info.is_dir():
                continue
            raw.seek(info.header_offset)
            header = raw.read(30)
            name_length, extra_length = struct.unpack("<HH", header[26:30])
            start = info.header_offset + 30 + name_length + extra_length
            if info.compress_size > STREAM_BYTES:
                data: bytes | Stored = Stored(path, start, info.compress_size)
            else:
                raw.seek(start)
                data = raw.read(info.compress_size)
            members.append(Member(info.filename, (info.external_attr >> 16) & 0o777, info.CRC, info.file_size, data))
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
    zip's size in bytes and its sha256. A member whose name is not a plain relative path stops it."""
    files = {member.name: member for member in members}
    for name in files:
        if why := unsafe(name):
            raise UnsafeContentError(f"{destination.name}: member {name!r} is {why}; a zip the kit writes never "
                                     "names a file outside the folder it is extracted into")
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
                method, crc, compressed, size = STORED, 0, 0, 0
                attributes = ((stat.S_IFDIR | DIR_MODE) << 16) | 0x10  # and the MS-DOS folder flag
            else:
                method, crc = DEFLATED, member.crc
                compressed, size = member.compressed_size, member.size
                attributes = (stat.S_IFREG | member.mode) << 16
            out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, _VERSION, flags, method, DOS_TIME, DOS_DATE, crc,
                                  compressed, size, len(encoded), 0) + encoded)
            for piece in member.pieces() if member is not None else ():
                out.write(piece)
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
    import zipfile  # lazy: 4 ms a cache hit of a build never spends

    if asset.is_file():
        with zipfile.ZipFile(asset) as archive:
            return {info.filename: info.file_size for info in archive.infolist() if not info.is_dir()}
    return {p.relative_to(asset).as_posix(): p.stat().st_size for p in asset.rglob("*") if p.is_file()}


def unzipped_size(asset: Path) -> int:
    """Bytes the asset takes once extracted, as Lambda counts against its 250 MB limit."""
    return sum(asset_sizes(asset).values())
