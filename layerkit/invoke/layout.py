"""Lay a function out as Lambda does: code at ``/var/task``; layers merged in order into ``/opt``.

Each layout is prepared once per content (the bytes of every asset, never their names or sizes alone) in the
kit's cache and reused by later invokes; a layout appears in one atomic rename, so an interrupted invoke never
leaves a half-merged ``/opt`` behind for the next one. Each use checks the layout against the list of files it was
made with (every path and size): one that lost or changed a file is made again, never used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from layerkit import uv
from layerkit.assembly import Function
from layerkit.cache import discard, materialize, resolve_cache_dir
from layerkit.errors import InvokeError, LayerkitError
from layerkit.targets import Target

#: The official runtime interface client, pinned: the loop that talks to the Runtime API inside the sandbox.
AWSLAMBDARIC = "awslambdaric==4.2.2"


@dataclass(frozen=True)
class Layout:
    task: Path
    opt: Path


def _digest_of(path: Path) -> str:
    """A sha256 of an asset's content: a zip's bytes, or every file of a folder (path, mode and bytes)."""
    digest = hashlib.sha256(b"file" if path.is_file() else b"folder")
    items = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for item in items:
        if item is not path:
            digest.update(item.relative_to(path).as_posix().encode() + b"\0" +
                          (b"x" if os.access(item, os.X_OK) else b"-"))
        with open(item, "rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def _extract(archive_path: Path, destination: Path) -> None:
    """Extract with the modes recorded in the zip (an executable in ``/opt/bin`` stays executable)."""
    root = destination.resolve()
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            target = (destination / info.filename).resolve()
            if not target.is_relative_to(root):
                raise InvokeError(f"{archive_path.name}: entry {info.filename!r} points outside the archive")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                target.unlink()  # a later layer replaces the same path of an earlier one
            with archive.open(info) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
            mode = (info.external_attr >> 16) & 0o777
            target.chmod(mode | 0o444 if mode else 0o644)


def _merge(source: Path, destination: Path) -> None:
    if source.is_file():
        _extract(source, destination)
    else:
        shutil.copytree(source, destination, dirs_exist_ok=True, symlinks=True)


def prepare_layout(function: Function, cache_dir: Path | None = None) -> Layout:
    """The function's ``/var/task`` and merged ``/opt`` as host folders (mounted read-only later)."""
    root = resolve_cache_dir(cache_dir) / "invoke"
    if function.code.is_dir():
        task = function.code  # an asset folder of the assembly, named by its content hash
    else:
        task = _folder(root / f"task-{_digest_of(function.code)}", lambda d: _extract(function.code, d))
    sources = [use.layer.asset for use in function.layers]
    key = hashlib.sha256("\0".join(_digest_of(s) for s in sources).encode()).hexdigest()

    def merge_in_order(destination: Path) -> None:
        for source in sources:
            _merge(source, destination)

    return Layout(task=task, opt=_folder(root / f"opt-{key}", merge_in_order))


def _manifest(root: Path) -> list[list[object]]:
    return [[p.relative_to(root).as_posix(), p.stat().st_size] for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()]


def _folder(entry: Path, fill: Callable[[Path], None]) -> Path:
    """A cache entry whose ``root/`` is filled by ``fill``: the folder that is mounted (nothing else in it),
    checked against its manifest on every use and made again when it no longer matches."""

    def fill_root(tree: Path) -> dict[str, object]:
        (tree / "root").mkdir()
        fill(tree / "root")
        return {"files": _manifest(tree / "root")}

    meta, filled = materialize(entry, fill_root, required=("files",))
    if not filled and meta["files"] != _manifest(entry / "root"):
        discard(entry)
        materialize(entry, fill_root, required=("files",))
    return entry / "root"


def prepare_runtime(target: Target, cache_dir: Path | None = None) -> Path:
    """A ``/var/runtime`` folder: awslambdaric for the target, beside the kit's bootstrap."""
    bootstrap = Path(__file__).with_name("bootstrap.py")
    revision = hashlib.sha256(bootstrap.read_bytes()).hexdigest()[:12]  # a changed bootstrap gets a new folder
    name = f"{AWSLAMBDARIC.replace('==', '-')}-{target.runtime}-{target.machine}-{revision}"
    entry = resolve_cache_dir(cache_dir) / "runtime" / name

    def install(destination: Path) -> None:
        requirements = destination.with_name("requirements.txt")
        requirements.write_text(AWSLAMBDARIC + "\n", encoding="utf-8")
        try:
            uv.install(requirements, destination, target, cwd=destination.parent, what="local invoke")
        except LayerkitError as error:
            raise InvokeError(f"installing {AWSLAMBDARIC} for {target} failed: {error}") from None
        shutil.copy2(bootstrap, destination / "bootstrap.py")

    return _folder(entry, install)
