"""Each installed distribution compressed once, and compiled once per Python and place, kept as ready-made zip members.

A package entry (``packages/``) holds the files of one installed distribution as deflated zip members that any layer
or function zip copies as they are. It is keyed by what decides those bytes: the distribution (name, version, and the
identity of its files: another wheel of the same name and version is another entry), the kit's and uv's versions,
and, where it ships compiled code, the Python version and machine it is for. A distribution without compiled code
is the same files for every target: a matrix of runtimes and architectures compresses it once.

Its ``.pyc`` are a bytecode entry of their own (``bytecode/``), keyed by the package's identity, the Python version
that compiled them and where the code lands (``/opt/python`` or ``/var/task``, which each ``.pyc`` records). So every
build path takes what an earlier one made: a matrix (no ``.pyc`` per target) the files a plain layer's build
compressed, a function the files of its layer's packages, compiling only its own ``.pyc``; two layers that share
numpy share all of its work, and a changed pin compiles and compresses one package. Entries appear in the cache
atomically (:mod:`layerkit.core.cache`), and one whose members were damaged is made again, never shipped.

Beside the entries, an index from each exact pin of a declaration (``name==version`` for a target, with the
declaration's hashes and indexes) to the package entry it gave: an exactly pinned declaration whose packages are all
cached, and whose dependencies are all among them, needs no installer at all, and a changed pin installs one
package (:func:`recall`, :func:`remember`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
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
PACKAGES = "packages"
BYTECODE = "bytecode"


@dataclass(frozen=True)
class Package:
    """A distribution as the cache holds it: its files' members, and the ``.pyc`` compiled for one build's target
    and destination (``bytecode`` None: the build ships none)."""

    name: str
    version: str
    entry: Path  # its package entry (the files)
    requires: frozenset[str]
    files: dict[str, int]  # path (relative to where the code lands) -> CRC-32, its .pyc included
    bytecode_failures: tuple[str, ...]
    reused: bool  # nothing of it was compressed or compiled by this build
    files_reused: bool  # its files were not compressed by this build (its .pyc may have been compiled)
    requires_dist: tuple[str, ...] = ()
    sizes: dict[str, int] = field(default_factory=dict)  # path -> unzipped bytes
    debug_bytes: int = 0  # what stripping its ELF files' debug sections would save (Slim(debug_symbols=True))
    bytecode: Path | None = None  # its bytecode entry
    packed: tuple[archive.Member, ...] = ()  # the members, when this build made them all (no need to read them)

    def members(self) -> list[archive.Member]:
        if self.packed:
            return list(self.packed)
        found = archive.read_members(self.entry / MEMBERS)
        return found + archive.read_members(self.bytecode / MEMBERS) if self.bytecode is not None else found


def ships_native_code(pin: Pin) -> bool:
    """Whether the distribution has compiled code: only then are its files those of one target."""
    return any(is_compiled(path) for path in pin.files)


def entry_key(pin: Pin, target: Target) -> str:
    """The package entry of ``pin`` for ``target``: its identity is that of the files it ships (already slimmed, if
    asked), and, for compiled code, the target's Python and machine."""
    where = (target.python_version, target.machine) if ships_native_code(pin) else ("any target",)
    parts = ("layerkit-package", builder_version(), pin.name, pin.version, pin.identity, *where)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def bytecode_key(identity: str, target: Target, destination: Destination) -> str:
    """The bytecode entry of the files of identity ``identity``, compiled for ``target``'s Python at
    ``destination`` (the path each ``.pyc`` records)."""
    parts = ("layerkit-bytecode", builder_version(), identity, target.python_version, destination.value)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


#: What a package entry's metadata must hold; an entry without one of them is damaged (made again).
REQUIRED = ("name", "version", "identity", "requires", "requires_dist", "files", "sizes", "debug_bytes",
            "members_bytes", "members_sha256")
#: What a bytecode entry's metadata must hold.
BYTECODE_REQUIRED = ("files", "sizes", "failures", "members_bytes", "members_sha256")


def _read(entry: Path, required: tuple[str, ...]) -> dict[str, Any] | None:
    """The metadata of the entry at ``entry`` if it is complete and intact (a damaged one is removed)."""
    meta = cache.read_entry(entry, required)
    if meta is not None and not cache.intact(entry / MEMBERS, meta["members_bytes"], meta["members_sha256"]):
        cache.discard(entry)  # damaged: made again, never shipped
        meta = None
    return meta


def _package(meta: dict[str, Any], entry: Path, compiled: dict[str, Any] | None, bytecode_entry: Path | None,
             reused: bool, files_reused: bool, packed: tuple[archive.Member, ...] = ()) -> Package:
    files = {path: crc for path, crc in meta["files"]}
    sizes = dict(meta["sizes"])
    if compiled is not None:
        files.update({path: crc for path, crc in compiled["files"]})
        sizes.update(compiled["sizes"])
    return Package(meta["name"], meta["version"], entry, frozenset(meta["requires"]), files,
                   tuple(compiled["failures"]) if compiled is not None else (), reused, files_reused,
                   tuple(meta["requires_dist"]),
                   sizes=sizes, debug_bytes=meta["debug_bytes"], bytecode=bytecode_entry, packed=packed)


def _pin_key(requirement: Requirement, declaration: Declaration, target: Target, slim: Slim) -> str:
    parts = ("layerkit-pin", builder_version(), requirement.name or "", requirement.pinned_version or "",
             *sorted(requirement.hashes), target.python_version, target.machine,
             *(redact(o) for o in declaration.options), *slim.file_options())
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def exact(requirement: Requirement) -> bool:
    """Whether ``requirement`` names one release (``name==version``, no extras, no URL or local path)."""
    return (requirement.name is not None and requirement.pinned_version is not None and requirement.local is None
            and requirement.url is None and "[" not in requirement.text.split(";")[0])


def recall(declaration: Declaration, target: Target, destination: Destination, *, compiled: bool,
           cache_dir: Path, slim: Slim) -> tuple[list[Package], list[Requirement]] | None:
    """For an exactly pinned declaration (every requirement ``name==version``, no extras, no constraints, each
    distribution once, every one hashed or none): the packages its pins gave before, whatever kind of build made
    them, and the pins that have none (or no ``.pyc`` for this build yet). None for any other declaration: a
    resolver decides it (and says why two pins of one distribution, or a pin without a hash in hash-checking mode,
    cannot be)."""
    applicable = declaration.for_target(target)
    if declaration.constraints or not applicable or not all(exact(r) for r in applicable):
        return None
    if len({r.name for r in applicable}) != len(applicable):
        return None
    if declaration.hashed and not all(r.hashes for r in applicable):
        return None
    found, missing = [], []
    for requirement in applicable:
        index = cache_dir / "pins" / _pin_key(requirement, declaration, target, slim)
        try:
            entry = cache_dir / PACKAGES / index.read_text(encoding="utf-8").strip()
        except OSError:
            missing.append(requirement)
            continue
        meta = _read(entry, REQUIRED)
        pyc_entry = cache_dir / BYTECODE / bytecode_key(meta["identity"], target, destination) \
            if meta is not None and compiled else None
        pyc = _read(pyc_entry, BYTECODE_REQUIRED) if pyc_entry is not None else None
        if meta is not None and meta["version"] == requirement.pinned_version and (pyc is not None or not compiled):
            found.append(_package(meta, entry, pyc, pyc_entry, reused=True, files_reused=True))
        else:
            missing.append(requirement)
    return found, missing


def remember(pins: Sequence[Pin], prepared: Sequence[Package], declaration: Declaration, target: Target, *,
             cache_dir: Path, slim: Slim) -> None:
    """Note, for each exact pin of ``declaration``, the package entry it gave."""
    entries = {package.name: package.entry.name for package in prepared}
    index = cache_dir / "pins"
    index.mkdir(parents=True, exist_ok=True)
    for requirement in declaration.for_target(target):
        if exact(requirement) and requirement.name in entries and any(p.name == requirement.name for p in pins):
            key = index / _pin_key(requirement, declaration, target, slim)
            partial = key.with_name(f".{key.name}.{os.getpid()}")
            partial.write_text(entries[requirement.name], encoding="utf-8")
            partial.replace(key)


def complete(packages: Sequence[Package], target: Target) -> bool:
    """Whether every dependency of every package is among them, at a version it accepts (markers evaluated for
    ``target``, extras followed): a set installed without resolving is what a resolver would have installed."""
    if len({p.name for p in packages}) != len(packages):
        return False  # two versions of one distribution: one would overwrite the other's files
    return dependencies_met({p.name: (p.version, p.requires_dist) for p in packages}, target.marker_environment())


def dependencies_met(installed: dict[str, tuple[str, tuple[str, ...]]], environment: dict[str, str]) -> bool:
    """Whether every distribution that the given ones require (``installed``: canonical name -> version and
    ``Requires-Dist``; markers evaluated in ``environment``, and for each extra that one of them asks of another) is
    among them, at a version its specifier accepts."""
    todo = [(name, "") for name in installed]
    seen: set[tuple[str, str]] = set()
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for line in installed[name][1]:
            try:
                requirement = Pep508(line)
            except InvalidRequirement:
                return False
            if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": extra}):
                continue
            dependency = canonical_name(requirement.name)
            if dependency not in installed or not requirement.specifier.contains(installed[dependency][0],
                                                                                 prereleases=True):
                return False
            todo += [(dependency, wanted) for wanted in requirement.extras]
    return True


@dataclass(eq=False)
class _Work:
    """One pin's part of a :func:`prepare`: which of its entries exist, and what is made now."""

    pin: Pin
    entry: Path
    meta: dict[str, Any] | None
    pyc_entry: Path | None
    pyc: dict[str, Any] | None
    compiled: list[str] = field(default_factory=list)  # the .pyc compiled now, paths under pin.site
    failures: list[str] = field(default_factory=list)
    made: list[archive.Member] = field(default_factory=list)
    made_pyc: list[archive.Member] = field(default_factory=list)


def prepare(pins: Sequence[Pin], target: Target, destination: Destination, *, python: Path | None, cache_dir: Path,
            what: str, workers: int | None = None) -> list[Package]:
    """The package of every pin: its files and ``.pyc`` (with ``python``) found in the cache, or compressed and
    compiled now, and stored."""
    jobs = []
    for pin in pins:
        entry = cache_dir / PACKAGES / entry_key(pin, target)
        pyc_entry = cache_dir / BYTECODE / bytecode_key(pin.identity, target, destination) if python else None
        jobs.append(_Work(pin, entry, _read(entry, REQUIRED), pyc_entry,
                          _read(pyc_entry, BYTECODE_REQUIRED) if pyc_entry is not None else None))
    to_pack = [job for job in jobs if job.meta is None]
    to_compile = [job for job in jobs if job.pyc_entry is not None and job.pyc is None]
    if to_pack or to_compile:
        with cache.scratch(cache_dir / PACKAGES, "pack") as work:
            _make(to_pack, to_compile, target, destination, python, work, what, workers)
    packages = []
    for job in jobs:
        packed, compiled = job in to_pack, job in to_compile
        made = [*job.made, *job.made_pyc]
        # Members made now are kept, unless one is spilled to the scratch folder (it goes with it).
        whole = packed and (compiled or job.pyc_entry is None) and not any(
            isinstance(m.data, archive.Stored) for m in made)
        assert job.meta is not None
        packages.append(_package(job.meta, job.entry, job.pyc, job.pyc_entry, not (packed or compiled), not packed,
                                 tuple(made) if whole else ()))
    return packages


def _make(to_pack: list[_Work], to_compile: list[_Work], target: Target, destination: Destination,
          python: Path | None, work: Path, what: str, workers: int | None) -> None:
    """Check and compress the files of ``to_pack``, compile the ``.pyc`` of ``to_compile`` (one batch over all cores),
    then compress both (threads over every file); each entry stored, its metadata and members kept on its job."""
    sizes = {id(job): _file_sizes(job.pin) for job in [*to_pack, *to_compile]}
    present = {key: sorted(found) for key, found in sizes.items()}
    for job in to_pack:
        _check_sizes(job.pin, sizes[id(job)], what)
        _check_native(job.pin, present[id(job)], target, what)
    if python is not None and to_compile:
        sources = [(job.pin.site / path, f"{destination.value}/{path}")
                   for job in to_compile for path in present[id(job)] if path.endswith(".py")]
        failed = {failure.path: failure.reason for failure in bytecode.compile_sources(python, sources, workers)}
        tag = "cpython-" + target.python_version.replace(".", "")
        for job in to_compile:
            for path in present[id(job)]:
                if not path.endswith(".py"):
                    continue
                if (job.pin.site / path) in failed:
                    job.failures.append(f"{path}: {failed[job.pin.site / path]}")
                    continue
                folder, _, name = path.rpartition("/")
                pyc = f"{folder + '/' if folder else ''}__pycache__/{name[:-3]}.{tag}.pyc"
                if (job.pin.site / pyc).is_file():
                    job.compiled.append(pyc)
    order = [(job, path, False) for job in to_pack for path in present[id(job)]]
    order += [(job, path, True) for job in to_compile for path in job.compiled]
    members = archive.compress_files([(path, job.pin.site / path) for job, path, _ in order], workers, work / "spill",
                                     what=what)
    for (job, _, is_pyc), member in zip(order, members, strict=True):
        (job.made_pyc if is_pyc else job.made).append(member)
    for job in to_pack:
        pin = job.pin
        job.meta = _store(job.entry, work / f"files-{len(os.listdir(work))}", job.made, REQUIRED, {
            "name": pin.name, "version": pin.version, "identity": pin.identity,
            "requires": sorted(pin.distribution.requires), "requires_dist": list(pin.distribution.requires_dist),
            "debug_bytes": sum(elf.debug_bytes_of(pin.site / path) for path in present[id(job)] if is_compiled(path)),
        })
    for job in to_compile:
        assert job.pyc_entry is not None
        job.pyc = _store(job.pyc_entry, work / f"pyc-{len(os.listdir(work))}", job.made_pyc, BYTECODE_REQUIRED,
                         {"failures": sorted(job.failures)})


def _store(entry: Path, folder: Path, members: list[archive.Member], required: tuple[str, ...],
           meta: dict[str, Any]) -> dict[str, Any]:
    """Write ``members`` as the entry ``entry`` with ``meta`` (and what every entry records of its members)."""
    folder.mkdir()
    members_bytes, members_sha256 = archive.write_zip(folder / MEMBERS, members)
    meta = {**meta, "files": [[m.name, m.crc] for m in members], "sizes": {m.name: m.size for m in members},
            "unzipped_bytes": sum(m.size for m in members), "members_bytes": members_bytes,
            "members_sha256": members_sha256}

    def move_into(tree: Path) -> dict[str, Any]:
        os.replace(folder / MEMBERS, tree / MEMBERS)
        return meta

    stored, _ = cache.materialize(entry, move_into, required)
    return stored
def _file_sizes(pin: Pin) -> dict[str, int]:
    """The size of each file ``pin``'s record names that is installed (one ``stat`` each)."""
    found = {}
    for path in pin.files:
        try:
            info = os.stat(pin.site / path)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            found[path] = info.st_size
    return found


def _check_sizes(pin: Pin, sizes: dict[str, int], what: str) -> None:
    """A file that alone is over Lambda's limit is refused before anything reads it."""
    for path, size in sorted(sizes.items()):
        if size > MAX_UNZIPPED_BYTES:
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
