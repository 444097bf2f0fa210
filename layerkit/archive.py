"""Deterministic zip files: the same tree gives the same bytes, on any machine, at any time."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

#: The earliest date a zip can hold; the CDK CLI uses it too when it zips an asset folder.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
EXECUTABLE_MODE = 0o755
DIR_MODE = 0o755


def _entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
    info.create_system = 3  # Unix, so that the mode below is honoured when extracted
    info.external_attr = mode << 16
    return info


def write_deterministic_zip(tree: Path, destination: Path) -> None:
    """Zip ``tree``'s content (paths relative to it) with sorted entries, fixed dates and fixed modes."""
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            entries.append((path.relative_to(tree).as_posix(), path))
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for rel, path in sorted(entries):
            if path.is_dir():
                info = _entry(rel + "/", stat.S_IFDIR | DIR_MODE)
                info.external_attr |= 0x10  # MS-DOS directory flag
                archive.writestr(info, b"")
            else:
                mode = EXECUTABLE_MODE if path.stat().st_mode & 0o111 else FILE_MODE
                info = _entry(rel, stat.S_IFREG | mode)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes(), compresslevel=6)


def asset_sizes(asset: Path) -> dict[str, int]:
    """Each file's unzipped size in an asset as the CDK stages it: a zip, or a folder the CLI zips later."""
    if asset.is_file():
        with zipfile.ZipFile(asset) as archive:
            return {info.filename: info.file_size for info in archive.infolist() if not info.is_dir()}
    return {p.relative_to(asset).as_posix(): p.stat().st_size for p in asset.rglob("*") if p.is_file()}


def unzipped_size(asset: Path) -> int:
    """Bytes the asset takes once extracted, as Lambda counts against its 250 MB limit."""
    return sum(asset_sizes(asset).values())
