"""ELF shared objects: how many of their bytes are debug information, and a copy without it.

Lambda loads a package's ``.so`` files through their program headers; the debug sections (``.debug_*``) and the
static symbol table (``.symtab``, ``.strtab``: the dynamic linker reads ``.dynsym``) are never loaded, and some
wheels ship megabytes of them. :func:`strip` writes a copy without them that is byte-for-byte the same in
everything that is loaded: it only removes sections that are not allocated, that lie after every segment, and
that no kept section refers to, and it leaves a file it cannot read that way as it is. It reads the format,
never the machine, so an arm64 ``.so`` is stripped on an x86_64 machine as well (``strip`` from binutils handles
only its own machine's).

Only the standard library: this module also runs inside the Docker builder's container (:mod:`layerkit.installed.slim`).
"""

from __future__ import annotations

import contextlib
import io
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_ELF64_LITTLE = b"\x7fELF\x02\x01"
_ET_EXEC, _ET_DYN = 2, 3
_SHT_NOBITS, _SHT_SYMTAB, _SHT_STRTAB, _SHT_RELA, _SHT_REL = 8, 2, 3, 4, 9
_SHF_ALLOC, _SHF_INFO_LINK = 0x2, 0x40
_SECTION = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr
_SEGMENT = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr
_PIECE = 1024 * 1024  # bytes copied at a time


@dataclass(frozen=True)
class _Section:
    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    info: int
    align: int
    raw: bytes

    @property
    def file_bytes(self) -> int:
        return 0 if self.type == _SHT_NOBITS else self.size


def _debug(section: _Section) -> bool:
    return section.name.startswith((".debug", ".zdebug", ".gnu.debuglto_")) or section.type == _SHT_SYMTAB


@dataclass(frozen=True)
class _Elf:
    data: bytes | mmap.mmap
    shoff: int
    shentsize: int
    shstrndx: int
    sections: list[_Section]
    segments_end: int


def _read(data: bytes | mmap.mmap) -> _Elf | None:
    """The sections of a little-endian ELF64 executable or shared object, or None for anything else."""
    if len(data) < 64 or data[:6] != _ELF64_LITTLE:
        return None
    e_type, = struct.unpack_from("<H", data, 16)
    phoff, shoff = struct.unpack_from("<QQ", data, 32)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 54)
    if e_type not in (_ET_EXEC, _ET_DYN) or shentsize != _SECTION.size or not shnum > 0 or shstrndx >= shnum \
            or shoff + shnum * shentsize > len(data) or phoff + phnum * phentsize > len(data):
        return None
    segments_end = 0
    for number in range(phnum):
        _, _, p_offset, _, _, p_filesz, _, _ = _SEGMENT.unpack_from(data, phoff + number * phentsize)
        segments_end = max(segments_end, p_offset + p_filesz)
    raw_headers = [data[shoff + i * shentsize: shoff + (i + 1) * shentsize] for i in range(shnum)]
    fields = [_SECTION.unpack(raw) for raw in raw_headers]
    names_offset, names_size = fields[shstrndx][4], fields[shstrndx][5]
    names = data[names_offset:names_offset + names_size]
    sections = []
    for index, (name, kind, flags, _, offset, size, link, info, align, _) in enumerate(fields):
        end = names.find(b"\0", name)
        if (kind != _SHT_NOBITS and offset + size > len(data)) or end < 0:
            return None
        sections.append(_Section(index, names[name:end].decode("latin-1"), kind, flags, offset, size, link, info,
                                 align, raw_headers[index]))
    return _Elf(data, shoff, shentsize, shstrndx, sections, segments_end)


def _removable(elf: _Elf) -> set[int]:
    """Indexes of the sections :func:`strip` removes: debug information and the static symbol table, with their
    string tables and relocations, where removing them changes nothing that is loaded."""
    sections = elf.sections
    removed = {s.index for s in sections if _debug(s)}
    removed |= {s.index for s in sections if s.type in (_SHT_REL, _SHT_RELA) and s.info in removed}
    removed |= {s.link for s in sections if s.index in removed and s.type == _SHT_SYMTAB
                and sections[s.link].type == _SHT_STRTAB and s.link != elf.shstrndx}
    changed = True
    while changed:  # keep what a kept section still refers to
        kept = [s for s in sections if s.index not in removed]
        needed = {s.link for s in kept} | {s.info for s in kept if s.flags & _SHF_INFO_LINK
                                           or s.type in (_SHT_REL, _SHT_RELA)}
        changed = bool(needed & removed)
        removed -= needed
    first_alloc_after = any(s.flags & _SHF_ALLOC for s in sections if removed and s.index > min(removed))
    if not removed or first_alloc_after or any(
            s.flags & _SHF_ALLOC or (s.file_bytes and s.offset < elf.segments_end) for s in sections
            if s.index in removed):
        return set()  # symbol tables would need new section numbers, or a loaded byte would move: leave it
    return removed


def debug_bytes(data: bytes | mmap.mmap) -> int:
    """The bytes :func:`strip` would remove from the ELF file ``data`` (0 for anything else)."""
    elf = _read(data)
    if elf is None:
        return 0
    removed = _removable(elf)
    return sum(elf.sections[index].file_bytes for index in removed) + len(removed) * _SECTION.size


def debug_bytes_of(path: Path) -> int:
    """:func:`debug_bytes` of a file, read through a memory map: only its headers are touched."""
    with open(path, "rb") as file, _mapped(file) as data:
        return debug_bytes(data)


def strip(data: bytes) -> bytes:
    """``data`` without its debug sections and static symbol table, or ``data`` itself where none can go."""
    out = io.BytesIO()
    _strip_to(data, out)
    return out.getvalue()


def strip_file(path: Path, destination: Path) -> int:
    """Write ``path`` stripped to ``destination`` (in pieces: never the whole file in memory); the bytes saved
    (0: an exact copy)."""
    with open(path, "rb") as file, _mapped(file) as data, open(destination, "wb") as out:
        _strip_to(data, out)
        return len(data) - out.tell()


@contextlib.contextmanager
def _mapped(file: BinaryIO) -> Iterator[bytes | mmap.mmap]:
    if os.fstat(file.fileno()).st_size == 0:
        yield b""
        return
    with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        yield data


def _copy(data: bytes | mmap.mmap, start: int, end: int, out: BinaryIO) -> None:
    for offset in range(start, end, _PIECE):
        out.write(data[offset:min(end, offset + _PIECE)])


def _strip_to(data: bytes | mmap.mmap, out: BinaryIO) -> None:
    elf = _read(data)
    removed = _removable(elf) if elf is not None else set()
    if elf is None or not removed:
        _copy(data, 0, len(data), out)
        return
    kept = [s for s in elf.sections if s.index not in removed]
    number = {s.index: new for new, s in enumerate(kept)}
    # Everything up to the first moved section stays where it is: every segment, every allocated section.
    moved = sorted((s for s in kept if s.file_bytes and s.offset >= elf.segments_end and s.index != 0),
                   key=lambda s: s.offset)
    start = min([s.offset for s in moved] + [elf.shoff, *(elf.sections[i].offset for i in removed)])
    start = max(start, elf.segments_end)
    _copy(data, 0, start, out)
    written = start
    offsets = {}
    for section in moved:
        padding = -written % max(section.align, 1)
        out.write(b"\0" * padding)
        offsets[section.index] = written = written + padding
        _copy(data, section.offset, section.offset + section.size, out)
        written += section.size
    padding = -written % 8
    out.write(b"\0" * padding)
    shoff = written + padding
    for section in kept:
        name, kind, flags, addr, offset, size, link, info, align, entsize = _SECTION.unpack(section.raw)
        info_is_index = flags & _SHF_INFO_LINK or kind in (_SHT_REL, _SHT_RELA)
        out.write(_SECTION.pack(name, kind, flags, addr, offsets.get(section.index, offset), size,
                                number.get(link, 0), number.get(info, 0) if info_is_index else info, align, entsize))
    # The ELF header's section header offset, count and string table index (the header was copied first).
    out.seek(40)
    out.write(struct.pack("<Q", shoff))
    out.seek(60)
    out.write(struct.pack("<HH", len(kept), number[elf.shstrndx]))
    out.seek(0, io.SEEK_END)
