"""Install each pinned distribution once per target, and keep it compiled and compressed.

A package entry is keyed by what decides its bytes: the wheel (name, version, sha256), the Python version and
machine it is for, where it lands (its ``.pyc`` record ``/opt/python/...`` or ``/var/task/...``, or there are
none), and the kit's and uv's versions. It holds the installed files as deflated zip members, ready to be
copied into any layer or function zip: two layers that share numpy share its work, and a changed pin installs,
compiles and compresses one package. Entries appear in the cache atomically (:mod:`layerkit.cache`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layerkit import __version__, archive, bytecode, cache, native, uv
from layerkit.errors import BuildError, NativeCodeError
from layerkit.installed import drop_bookkeeping, read_distributions
from layerkit.pins import Pin
from layerkit.targets import Destination, Target

Reporter = Callable[[str], None]
MEMBERS = "members.zip"


@dataclass(frozen=True)
class Package:
    """A package entry of the cache: the members of one installed distribution."""

    name: str
    version: str
    entry: Path
    requires: frozenset[str]
    files: dict[str, int]  # path (relative to where the code lands) -> CRC-32
    bytecode_failures: tuple[str, ...]
    reused: bool

    def members(self) -> list[archive.Member]:
        return archive.read_members(self.entry / MEMBERS)


def entry_key(pin: Pin, target: Target, destination: Destination, compiled: bool) -> str:
    parts = ("layerkit-package", __version__, uv.version(), pin.name, pin.version, pin.sha256,
             target.python_version, target.machine, destination.value if compiled else "no-bytecode")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _package(meta: dict[str, Any], entry: Path, reused: bool) -> Package:
    return Package(meta["name"], meta["version"], entry, frozenset(meta["requires"]),
                   {path: crc for path, crc in meta["files"]}, tuple(meta["bytecode_failures"]), reused)


def install(pins: Sequence[Pin], target: Target, destination: Destination, *, python: Path | None,
            options: Sequence[str], cache_dir: Path, what: str, workers: int | None = None) -> list[Package]:
    """The package entry of every pin, installing, compiling and compressing the ones not yet cached."""
    root = cache_dir / "packages"
    keyed = [(pin, root / entry_key(pin, target, destination, python is not None)) for pin in pins]
    found: dict[str, Package] = {}
    missing = []
    for pin, entry in keyed:
        meta = cache.read_entry(entry)
        if meta is not None and not cache.intact(entry / MEMBERS, meta.get("members_bytes", -1),
                                                 meta.get("members_sha256", "")):
            cache.discard(entry)  # damaged: installed again below, never shipped
            meta = None
        if meta is not None:
            found[pin.name] = _package(meta, entry, reused=True)
        else:
            missing.append((pin, entry))
    if missing:
        with cache.scratch(root, "install") as work:
            for pin, entry, tree in _install_missing(missing, target, destination, python, options, work,
                                                     what, workers):
                meta, _ = cache.materialize(entry, lambda d, tree=tree: _move_into(tree, d))
                found[pin.name] = _package(meta, entry, reused=False)
    return [found[pin.name] for pin in pins]


def _install_missing(missing: list[tuple[Pin, Path]], target: Target, destination: Destination,
                     python: Path | None, options: Sequence[str], work: Path, what: str,
                     workers: int | None) -> list[tuple[Pin, Path, Path]]:
    """Install (in parallel), compile (one batch over all cores), then compress (threads) each missing pin."""
    trees = [(pin, entry, work / pin.name) for pin, entry in missing]

    def install_one(item: tuple[Pin, Path, Path]) -> None:
        pin, _, tree = item
        site = tree / "site"
        uv.install(pin.requirement, site, target, options=options, cwd=work, what=what)
        drop_bookkeeping(site)

    with ThreadPoolExecutor(max_workers=max(1, min(workers or os.cpu_count() or 1, 8) * 2)) as pool:
        list(pool.map(install_one, trees))
    failures: list[bytecode.Failure] = []
    if python is not None:
        sources = [s for _, _, tree in trees for s in bytecode.sources_of(tree / "site", destination.value)]
        failures = bytecode.compile_sources(python, sources, workers)
    for pin, _, tree in trees:
        site = tree / "site"
        _check_native(pin, site, target, what)
        dists = [d for d in read_distributions(site) if d.name == pin.name]
        if not dists:
            raise BuildError(f"{what}: installing {pin.wheel} left no {pin.name} distribution; report this wheel")
        files = sorted(p for p in site.rglob("*") if p.is_file())
        names = [p.relative_to(site).as_posix() for p in files]
        members = archive.compress_files(zip(names, files, strict=True), workers)
        archive.write_zip(tree / MEMBERS, members)
        packed = (tree / MEMBERS).read_bytes()
        failed = sorted(f.path.relative_to(site).as_posix() + f": {f.reason}" for f in failures
                        if f.path.is_relative_to(site))
        meta = {"name": pin.name, "version": pin.version, "wheel": pin.wheel, "sha256": pin.sha256,
                "requires": sorted(dists[0].requires), "files": [[m.name, m.crc] for m in members],
                "bytecode_failures": failed, "unzipped_bytes": sum(m.size for m in members),
                "members_bytes": len(packed), "members_sha256": hashlib.sha256(packed).hexdigest()}
        (tree / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        shutil.rmtree(site)
    return trees


def _move_into(tree: Path, destination: Path) -> dict[str, Any]:
    os.replace(tree / MEMBERS, destination / MEMBERS)
    return json.loads((tree / "meta.json").read_text(encoding="utf-8"))


def _check_native(pin: Pin, site: Path, target: Target, what: str) -> None:
    def head(path: str) -> bytes:
        with open(site / path, "rb") as file:
            return file.read(native.HEAD_BYTES)

    names = [p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file()]
    if wrong := native.misfits(names, head, target):
        path, why = wrong[0]
        raise NativeCodeError(
            f"{what}: {path} from {pin.wheel} {why}, not for {target.runtime} on {target.machine} Linux, so it "
            f"cannot load on Lambda; pin a version of {pin.name} whose wheel is built for the target, or replace it"
        )
    newest = target.glibc
    for name in names:
        if native.is_native_name(name) and (needed := native.glibc_needed((site / name).read_bytes())) and \
                needed > newest:
            raise NativeCodeError(
                f"{what}: {name} from {pin.wheel} needs glibc {needed[0]}.{needed[1]}, and {target.runtime} runs on "
                f"{target.os} with glibc {newest[0]}.{newest[1]}; pin a version of {pin.name} with a wheel for "
                f"{target.manylinux}"
            )
