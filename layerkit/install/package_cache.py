"""Each installed distribution compiled and compressed once per target, and kept as ready-made zip members.

A package entry is keyed by what decides its bytes: the distribution (name, version, and the identity of its
files: another wheel of the same name and version is another entry), the Python version and machine it is for,
where it lands (its ``.pyc`` record ``/opt/python/...`` or ``/var/task/...``, or there are none), and the kit's
and uv's versions. It holds the distribution's files, and the ``.pyc`` compiled from them, as deflated zip
members that any layer or function zip copies as they are: two layers that share numpy share its work, and a
changed pin compiles and compresses one package. Entries appear in the cache atomically (:mod:`layerkit.core.cache`),
and one whose members were damaged is made again, never shipped.

Beside the entries, an index from each exact pin of a declaration (``name==version`` for a target, with the
declaration's hashes and indexes) to the entry it gave: an exactly pinned declaration whose packages are all
cached, and whose dependencies are all among them, needs no installer at all, and a changed pin installs one
package (:func:`recall`, :func:`remember`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as Pep508

from layerkit.core import archive, cache
from layerkit.core.cache_keys import builder_version
from layerkit.core.errors import NativeCodeError, TooLargeError, redact
from layerkit.core.targets import Destination, Target
from layerkit.install import bytecode
from layerkit.install.pins import Pin
from layerkit.installed import elf
from layerkit.installed.distributions import canonical_name
from layerkit.installed.layer_paths import is_compiled
from layerkit.installed.slim import Slim
from layerkit.rules import native
from layerkit.rules.limits import MAX_UNZIPPED_BYTES
from layerkit.rules.size import megabytes
from layerkit.sources.declaration import Declaration, Requirement

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
    requires_dist: tuple[str, ...] = ()
    sizes: dict[str, int] = field(default_factory=dict)  # path -> unzipped bytes
    debug_bytes: int = 0  # what stripping its ELF files' debug sections would save (Slim(debug_symbols=True))
    packed: tuple[archive.Member, ...] = ()  # the members, when this build made them (no need to read them back)

    def members(self) -> list[archive.Member]:
        return list(self.packed) or archive.read_members(self.entry / MEMBERS)


def entry_key(pin: Pin, target: Target, destination: Destination, compiled: bool) -> str:
    """The package entry of ``pin``: its identity is that of the files it ships (already slimmed, if asked)."""
    parts = ("layerkit-package", builder_version(), pin.name, pin.version, pin.identity,
             target.python_version, target.machine, destination.value if compiled else "no-bytecode")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


#: What a package entry's metadata must hold; an entry without one of them is damaged (made again).
REQUIRED = ("name", "version", "requires", "requires_dist", "files", "sizes", "bytecode_failures", "debug_bytes",
            "members_bytes", "members_sha256")


def _package(meta: dict[str, Any], entry: Path, reused: bool) -> Package:
    return Package(meta["name"], meta["version"], entry, frozenset(meta["requires"]),
                   {path: crc for path, crc in meta["files"]}, tuple(meta["bytecode_failures"]), reused,
                   tuple(meta["requires_dist"]), sizes=dict(meta["sizes"]), debug_bytes=meta["debug_bytes"])


def _cached(entry: Path) -> Package | None:
    """The package entry at ``entry`` if it is complete and intact (a damaged one is removed)."""
    meta = cache.read_entry(entry, REQUIRED)
    if meta is not None and not cache.intact(entry / MEMBERS, meta["members_bytes"], meta["members_sha256"]):
        cache.discard(entry)  # damaged: made again, never shipped
        meta = None
    return _package(meta, entry, reused=True) if meta is not None else None


def _pin_key(requirement: Requirement, declaration: Declaration, target: Target, destination: Destination,
             compiled: bool, slim: Slim) -> str:
    parts = ("layerkit-pin", builder_version(), requirement.name or "", requirement.pinned_version or "",
             *sorted(requirement.hashes), target.python_version, target.machine,
             destination.value if compiled else "no-bytecode", *(redact(o) for o in declaration.options),
             *slim.file_options())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _exact(requirement: Requirement) -> bool:
    return (requirement.name is not None and requirement.pinned_version is not None and requirement.local is None
            and requirement.url is None and "[" not in requirement.text.split(";")[0])


def recall(declaration: Declaration, target: Target, destination: Destination, *, compiled: bool,
           cache_dir: Path, slim: Slim) -> tuple[list[Package], list[Requirement]] | None:
    """For an exactly pinned declaration (every requirement ``name==version``, no extras, no constraints): the
    package entries its pins gave before, and the pins that have none. None for any other declaration."""
    applicable = declaration.for_target(target)
    if declaration.constraints or not applicable or not all(_exact(r) for r in applicable):
        return None
    found, missing = [], []
    for requirement in applicable:
        index = cache_dir / "pins" / _pin_key(requirement, declaration, target, destination, compiled, slim)
        try:
            package = _cached(cache_dir / "packages" / index.read_text(encoding="utf-8").strip())
        except OSError:
            package = None
        if package is not None and package.version == requirement.pinned_version:
            found.append(package)
        else:
            missing.append(requirement)
    return found, missing


def remember(pins: Sequence[Pin], prepared: Sequence[Package], declaration: Declaration, target: Target,
             destination: Destination, *, compiled: bool, cache_dir: Path, slim: Slim) -> None:
    """Note, for each exact pin of ``declaration``, the package entry it gave."""
    entries = {package.name: package.entry.name for package in prepared}
    index = cache_dir / "pins"
    index.mkdir(parents=True, exist_ok=True)
    for requirement in declaration.for_target(target):
        if _exact(requirement) and requirement.name in entries and any(p.name == requirement.name for p in pins):
            key = index / _pin_key(requirement, declaration, target, destination, compiled, slim)
            partial = key.with_name(f".{key.name}.{os.getpid()}")
            partial.write_text(entries[requirement.name], encoding="utf-8")
            partial.replace(key)


def complete(packages: Sequence[Package], target: Target) -> bool:
    """Whether the dependencies of every package are among them (markers evaluated for ``target``)."""
    return dependencies_met({p.name: p.requires_dist for p in packages}, target.marker_environment())


def dependencies_met(requires_dist: dict[str, tuple[str, ...]], environment: dict[str, str]) -> bool:
    """Whether every distribution that the given ones require (``Requires-Dist``, markers evaluated in
    ``environment``, no extra requested) is among them: a set installed without resolving is complete."""
    for lines in requires_dist.values():
        for line in lines:
            try:
                requirement = Pep508(line)
            except InvalidRequirement:
                return False
            if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": ""}):
                continue
            if canonical_name(requirement.name) not in requires_dist:
                return False
    return True


def prepare(pins: Sequence[Pin], target: Target, destination: Destination, *, python: Path | None, cache_dir: Path,
            what: str, workers: int | None = None) -> list[Package]:
    """The package entry of every pin: found in the cache, or compiled, compressed and stored now."""
    root = cache_dir / "packages"
    keyed = [(pin, root / entry_key(pin, target, destination, python is not None)) for pin in pins]
    found: dict[str, Package] = {}
    missing = []
    for pin, entry in keyed:
        if (package := _cached(entry)) is not None:
            found[pin.name] = package
        else:
            missing.append((pin, entry))
    if missing:
        with cache.scratch(root, "pack") as work:
            for (pin, entry), (meta, members) in zip(missing, _pack([p for p, _ in missing], target, destination,
                                                                   python, work, what, workers), strict=True):
                stored, filled = cache.materialize(
                    entry, lambda tree, pin=pin, meta=meta: _move_into(work, pin, tree, meta), REQUIRED)
                package = _package(stored, entry, reused=False)
                # Members made now are kept, unless one is spilled to the scratch folder (it goes with it).
                in_memory = filled and not any(isinstance(m.data, archive.Stored) for m in members)
                found[pin.name] = replace(package, packed=tuple(members)) if in_memory else package
    return [found[pin.name] for pin in pins]


def _pack(pins: list[Pin], target: Target, destination: Destination, python: Path | None, work: Path, what: str,
          workers: int | None) -> list[tuple[dict[str, Any], list[archive.Member]]]:
    """Check, compile (one batch over all cores), then compress (threads over every file) each pin; the metadata
    and members of each entry, its members also written to ``work/<name>/``."""
    present = {pin.name: sorted(path for path in pin.files if (pin.site / path).is_file()) for pin in pins}
    for pin in pins:
        _check_sizes(pin, present[pin.name], what)
        _check_native(pin, present[pin.name], target, what)
    failures: dict[Path, str] = {}
    compiled: dict[str, list[str]] = {pin.name: [] for pin in pins}
    if python is not None:
        sources = [(pin.site / path, f"{destination.value}/{path}")
                   for pin in pins for path in present[pin.name] if path.endswith(".py")]
        failures = {failure.path: failure.reason for failure in bytecode.compile_sources(python, sources, workers)}
        tag = "cpython-" + target.python_version.replace(".", "")
        for pin in pins:
            for path in present[pin.name]:
                if path.endswith(".py") and (pin.site / path) not in failures:
                    folder, _, name = path.rpartition("/")
                    pyc = f"{folder + '/' if folder else ''}__pycache__/{name[:-3]}.{tag}.pyc"
                    if (pin.site / pyc).is_file():
                        compiled[pin.name].append(pyc)
    order = [(pin, path) for pin in pins for path in [*present[pin.name], *compiled[pin.name]]]
    members = archive.compress_files([(path, pin.site / path) for pin, path in order], workers, work / "spill",
                                     what=what)
    by_pin: dict[str, list[archive.Member]] = {pin.name: [] for pin in pins}
    for (pin, _), member in zip(order, members, strict=True):
        by_pin[pin.name].append(member)
    packed = []
    for pin in pins:
        folder = work / pin.name
        folder.mkdir()
        members_bytes, members_sha256 = archive.write_zip(folder / MEMBERS, by_pin[pin.name])
        failed = sorted(f"{path}: {failures[pin.site / path]}" for path in present[pin.name]
                        if (pin.site / path) in failures)
        packed.append(({
            "name": pin.name, "version": pin.version, "identity": pin.identity,
            "requires": sorted(pin.distribution.requires), "requires_dist": list(pin.distribution.requires_dist),
            "files": [[m.name, m.crc] for m in by_pin[pin.name]],
            "sizes": {m.name: m.size for m in by_pin[pin.name]},
            "debug_bytes": sum(elf.debug_bytes_of(pin.site / path) for path in present[pin.name]
                               if is_compiled(path)),
            "bytecode_failures": failed, "unzipped_bytes": sum(m.size for m in by_pin[pin.name]),
            "members_bytes": members_bytes, "members_sha256": members_sha256,
        }, by_pin[pin.name]))
    return packed


def _move_into(work: Path, pin: Pin, tree: Path, meta: dict[str, Any]) -> dict[str, Any]:
    os.replace(work / pin.name / MEMBERS, tree / MEMBERS)
    return meta


def _check_sizes(pin: Pin, paths: list[str], what: str) -> None:
    """A file that alone is over Lambda's limit is refused before anything reads it."""
    for path in paths:
        if (size := (pin.site / path).stat().st_size) > MAX_UNZIPPED_BYTES:
            raise TooLargeError(
                f"{what}: {path} from {pin.pin} is {megabytes(size)} on its own, over Lambda's 250 MB for a "
                f"function's code and all its layers unzipped: it can never deploy; replace {pin.name}, or ship "
                "the function as a container image (10 GB)"
            )


def _check_native(pin: Pin, paths: list[str], target: Target, what: str) -> None:
    def head(path: str) -> bytes:
        with open(pin.site / path, "rb") as file:
            return file.read(native.HEAD_BYTES)

    if wrong := native.misfits(paths, head, target):
        path, why = wrong[0]
        raise NativeCodeError(
            f"{what}: {path} from {pin.pin} {why}, not for {target.runtime} on {target.machine} Linux, so it "
            f"cannot load on Lambda; pin a version of {pin.name} whose wheel is built for the target, or replace it"
        )
    newest = target.glibc
    for path in paths:
        if is_compiled(path) and (needed := native.glibc_too_new_in(pin.site / path, target)):
            raise NativeCodeError(
                f"{what}: {path} from {pin.pin} needs glibc {needed[0]}.{needed[1]}, and {target.runtime} runs on "
                f"{target.os} with glibc {newest[0]}.{newest[1]}; pin a version of {pin.name} with a wheel for "
                f"{target.manylinux}"
            )
