"""A layer built for several runtimes and architectures, in as few layer versions as correctness allows.

A layer's own code is the same for every target; its dependencies are not: a compiled wheel is built for one
CPython and one machine. Lambda puts both ``/opt/python/lib/python3.X/site-packages`` (first) and ``/opt/python``
on ``sys.path``, so one zip can serve several runtimes: what every runtime's build holds identically sits once in
``python/``, the rest in each runtime's ``site-packages``. What moves is a whole top-level entry (a package, a
module, a ``.dist-info``): half a package in each folder would not import. There is one zip per architecture (a
``.so`` runs on one machine), or one for all when no build holds compiled code and every architecture's build is
the same.

Each runtime compiles ``.pyc`` for every source it sees, with the path the file has on Lambda; a shared module's
``.pyc`` of several versions sit side by side by cache tag (``x.cpython-312.pyc``, ``x.cpython-313.pyc``).

Every target is built on its own first (:func:`layerkit.build.build_source`, cached, without ``.pyc``); a target
the kit cannot build (a dependency without a wheel for one runtime) stops the build naming the pair.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layerkit import archive, cache
from layerkit.errors import UnsupportedTargetError
from layerkit.native import is_native_name
from layerkit.targets import ARCHITECTURES, RUNTIMES, Target

#: Bumped whenever the way variants are merged changes (their asset hashes with it).
MATRIX_LAYOUT = "1"
ASSET = "asset.zip"
_PREFIX = "python/"


@dataclass(frozen=True)
class Variant:
    """One layer version of a layer built for several targets: the architectures and runtimes it serves."""

    architectures: tuple[str, ...]
    runtimes: tuple[str, ...]

    @property
    def key(self) -> str:
        """``x86_64``, ``arm64`` or ``all``: how the version is named (construct ids, SSM parameters)."""
        return self.architectures[0] if len(self.architectures) == 1 else "all"

    def serves(self, target: Target) -> bool:
        return target.runtime in self.runtimes and target.architecture in self.architectures


@dataclass(frozen=True)
class VariantBuild:
    """The zip of one variant, and what it is made of."""

    variant: Variant
    zip: Path
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    asset_hash: str
    cache: str
    bytecode: bool
    packages: dict[str, list[str]] = field(default_factory=dict)  # runtime -> pins

    def to_json(self) -> dict[str, Any]:
        return {"architectures": list(self.variant.architectures), "runtimes": list(self.variant.runtimes),
                "zip": str(self.zip), "sha256": self.sha256, "zipped_bytes": self.zipped_bytes,
                "unzipped_bytes": self.unzipped_bytes, "asset_hash": self.asset_hash, "cache": self.cache,
                "bytecode": self.bytecode, "packages": self.packages}


def targets_of(runtimes: Sequence[str], architectures: Sequence[str]) -> list[Target]:
    """Every (runtime, architecture) pair, checked; duplicates dropped, the order kept."""
    if not runtimes or not architectures:
        raise UnsupportedTargetError("a layer needs at least one runtime and one architecture; list them, e.g. "
                                     "runtimes=[Runtime.PYTHON_3_12], architectures=[Architecture.X86_64]")
    return [Target(r, a) for r in dict.fromkeys(runtimes) for a in dict.fromkeys(architectures)]


def _top(name: str) -> str:
    """The top-level entry of a member under ``python/``: the package, module or ``.dist-info`` it belongs to."""
    first = name[len(_PREFIX):].split("/", 1)[0]
    return first.split(".", 1)[0] if first.endswith((".py", ".so", ".pyd")) or ".so." in first else first


def _site(runtime: str) -> str:
    return f"{_PREFIX}lib/python{runtime.removeprefix('python')}/site-packages/"


def _inflate(member: archive.Member) -> bytes:
    data = b"".join(member.pieces())
    return zlib.decompress(data, -15)


def build_variants(source: Any, runtimes: Sequence[str], architectures: Sequence[str], *, cache_dir: Path,
                   report: Callable[[str], None], bytecode: bool, workers: int | None = None,
                   slim: Any = None, spelling: Any = None) -> list[VariantBuild]:
    """The layer zips for every (runtime, architecture) of ``runtimes`` x ``architectures``: one per architecture,
    or one for all where that is the same code."""
    from layerkit.build import build_source, builder_version

    targets = targets_of(runtimes, architectures)
    from layerkit.rules import IN_CONSTRUCT

    spelling = spelling or IN_CONSTRUCT
    parts = {(t.runtime, t.architecture): build_source(source, t, cache_dir=cache_dir, report=report, bytecode=False,
                                                       workers=workers, slim=slim, spelling=spelling)
             for t in targets}
    members = {key: {m.name: m for m in archive.read_members(build.zip)} for key, build in parts.items()}
    runtimes = list(dict.fromkeys(runtimes))
    architectures = list(dict.fromkeys(architectures))
    compiled = any(is_native_name(name) for found in members.values() for name in found)
    same_everywhere = all(
        {n: m.crc for n, m in members[(r, architectures[0])].items()} == {n: m.crc for n, m in members[(r, a)].items()}
        for r in runtimes for a in architectures)
    groups = [tuple(architectures)] if not compiled and same_everywhere else [(a,) for a in architectures]
    pythons: dict[str, Path] = {}
    if bytecode:
        from layerkit.bytecode import compiler

        found = {r: compiler(source.what, r.removeprefix("python"), report, fix=spelling.bytecode)
                 for r in runtimes}
        pythons = {r: python for r, python in found.items() if python is not None}
        bytecode = len(pythons) == len(runtimes)
        pythons = pythons if bytecode else {}
    built = []
    for group in groups:
        variant = Variant(group, tuple(runtimes))
        by_runtime = {r: members[(r, group[0])] for r in runtimes}
        asset_hash = hashlib.sha256("\0".join([
            "layerkit-variants", MATRIX_LAYOUT, *group, *runtimes, f"bytecode={bytecode}",
            *(parts[(r, a)].asset_hash for r in runtimes for a in group)]).encode()).hexdigest()
        key = hashlib.sha256(f"{asset_hash}\0{builder_version()}\0{sorted(pythons.items())}".encode()).hexdigest()
        entry = cache_dir / "builds" / f"variants-{key}"

        def fill(tree: Path, by_runtime: dict[str, dict[str, archive.Member]] = by_runtime) -> dict[str, Any]:
            return _merge(by_runtime, pythons, tree / ASSET, cache_dir, workers)

        meta, filled = cache.materialize(entry, fill, required=("sha256", "zipped_bytes", "unzipped_bytes"))
        if not filled and not cache.intact(entry / ASSET, meta["zipped_bytes"], meta["sha256"]):
            cache.discard(entry)
            meta, filled = cache.materialize(entry, fill, required=("sha256", "zipped_bytes", "unzipped_bytes"))
        report(f"{source.what}: {'/'.join(group)} for {', '.join(runtimes)}: {meta['unzipped_bytes'] / 1e6:.1f} MB "
               f"unzipped [{'miss' if filled else 'hit'}]")
        built.append(VariantBuild(variant, entry / ASSET, meta["sha256"], meta["zipped_bytes"], meta["unzipped_bytes"],
                                  asset_hash, "miss" if filled else "hit", bytecode,
                                  {r: parts[(r, group[0])].packages for r in runtimes}))
    return built


def _merge(by_runtime: dict[str, dict[str, archive.Member]], pythons: dict[str, Path], destination: Path,
           cache_dir: Path, workers: int | None) -> dict[str, Any]:
    """One zip for several runtimes' builds of one architecture (see the module)."""
    runtimes = list(by_runtime)
    units: dict[str, dict[str, dict[str, int]]] = {}  # top-level entry -> runtime -> {name: crc}
    for runtime, found in by_runtime.items():
        for name, member in found.items():
            units.setdefault(_top(name), {}).setdefault(runtime, {})[name] = member.crc
    shared = {unit for unit, per in units.items()
              if len(per) == len(runtimes) and all(per[r] == per[runtimes[0]] for r in runtimes)}
    placed: dict[str, archive.Member] = {}
    visible: dict[str, list[str]] = {r: [] for r in runtimes}  # the sources each runtime compiles
    for unit, per in sorted(units.items()):
        if unit in shared:
            for name in sorted(per[runtimes[0]]):
                placed[name] = by_runtime[runtimes[0]][name]
                if name.endswith(".py"):
                    for runtime in runtimes:
                        visible[runtime].append(name)
            continue
        for runtime, names in per.items():
            for name in sorted(names):
                member = by_runtime[runtime][name]
                moved = _site(runtime) + name[len(_PREFIX):]
                placed[moved] = archive.Member(moved, member.mode, member.crc, member.size, member.data)
                if name.endswith(".py"):
                    visible[runtime].append(moved)
    members = list(placed.values())
    if pythons:
        members += _compile(placed, visible, pythons, cache_dir, workers)
    zipped_bytes, sha256 = archive.write_zip(destination, members)
    return {"sha256": sha256, "zipped_bytes": zipped_bytes, "unzipped_bytes": sum(m.size for m in members),
            "shared_entries": sorted(shared), "runtimes": runtimes}


def _compile(placed: dict[str, archive.Member], visible: dict[str, list[str]], pythons: dict[str, Path],
             cache_dir: Path, workers: int | None) -> list[archive.Member]:
    """The ``.pyc`` of each runtime for the sources it sees, compiled by that runtime's Python with the path each
    source has on Lambda."""
    from layerkit import bytecode

    compiled: list[archive.Member] = []
    with cache.scratch(cache_dir / "builds", "variants") as work:
        for runtime, names in visible.items():
            tree = work / runtime
            jobs = []
            for name in names:
                path = tree / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(_inflate(placed[name]))
                jobs.append((path, "/opt/" + name))
            failed = {f.path for f in bytecode.compile_sources(pythons[runtime], jobs, workers)}
            tag = "cpython-" + runtime.removeprefix("python").replace(".", "")
            for path, _ in jobs:
                pyc = path.parent / "__pycache__" / f"{path.stem}.{tag}.pyc"
                if path not in failed and pyc.is_file():
                    compiled.append(archive.compress(pyc.relative_to(tree).as_posix(), pyc.read_bytes()))
    return compiled


def runtimes_of_path(name: str) -> str | None:
    """``python3.12`` for a member under ``python/lib/python3.12/site-packages/``, else None (seen by all)."""
    match = re.match(r"^python/lib/(python3\.\d+)/site-packages/", name)
    return match.group(1) if match else None


def check_known(runtimes: Sequence[str], architectures: Sequence[str]) -> None:
    for runtime in runtimes:
        if runtime not in RUNTIMES:
            Target(runtime, next(iter(ARCHITECTURES)))  # raises the kit's error naming the runtimes it builds
    for architecture in architectures:
        if architecture not in ARCHITECTURES:
            Target(next(iter(RUNTIMES)), architecture)
