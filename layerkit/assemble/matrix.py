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

Every target is built on its own first (:func:`.local_build.build_source`, cached, without ``.pyc``); a target
the kit cannot build (a dependency without a wheel for one runtime) stops the build naming the pair.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from layerkit.assemble.build_result import Build
from layerkit.assemble.local_build import build_source
from layerkit.core import archive, cache
from layerkit.core.cache_keys import builder_version
from layerkit.core.spelling import in_use
from layerkit.core.targets import targets_of
from layerkit.install.bytecode import compile_sources, compiler
from layerkit.installed.layer_paths import is_compiled, site_packages, top_level
from layerkit.installed.slim import Slim
from layerkit.sources import SourceFolder

#: Bumped whenever the way variants are merged changes (their asset hashes with it).
MATRIX_LAYOUT = "1"
ASSET = "asset.zip"
_PREFIX = "python/"


def _top(name: str) -> str:
    """The top-level entry of a member under ``python/``: the package, module or ``.dist-info`` it belongs to."""
    return top_level(name[len(_PREFIX):].split("/", 1)[0])


def _inflate(member: archive.Member) -> bytes:
    data = b"".join(member.pieces())
    return zlib.decompress(data, -15)


def build_variants(source: SourceFolder, runtimes: Sequence[str], architectures: Sequence[str], *, cache_dir: Path,
                   report: Callable[[str], None], bytecode: bool, workers: int | None = None,
                   slim: Slim | None = None) -> list[Build]:
    """The layer zips for every (runtime, architecture) of ``runtimes`` x ``architectures``: one per architecture,
    or one for all where that is the same code. Each :class:`~layerkit.assemble.build_result.Build` says the
    runtimes and architectures it serves; its ``runtime``, ``architecture`` and ``packages`` are its first
    target's."""
    started = time.perf_counter()
    targets = targets_of(runtimes, architectures)
    parts = {(t.runtime, t.architecture): build_source(source, t, cache_dir=cache_dir, report=report, bytecode=False,
                                                       workers=workers, slim=slim)
             for t in targets}
    members = {key: {m.name: m for m in archive.read_members(build.zip)} for key, build in parts.items()}
    runtimes = list(dict.fromkeys(runtimes))
    architectures = list(dict.fromkeys(architectures))
    compiled = any(is_compiled(name) for found in members.values() for name in found)
    same_everywhere = all(
        {n: m.crc for n, m in members[(r, architectures[0])].items()} == {n: m.crc for n, m in members[(r, a)].items()}
        for r in runtimes for a in architectures)
    groups = [tuple(architectures)] if not compiled and same_everywhere else [(a,) for a in architectures]
    pythons: dict[str, Path] = {}
    if bytecode:
        found = {r: compiler(source.what, r.removeprefix("python"), report, fix=in_use().bytecode)
                 for r in runtimes}
        pythons = {r: python for r, python in found.items() if python is not None}
        bytecode = len(pythons) == len(runtimes)
        pythons = pythons if bytecode else {}
    built = []
    for group in groups:
        by_runtime = {r: members[(r, group[0])] for r in runtimes}
        asset_hash = hashlib.sha256("\0".join([
            "layerkit-variants", MATRIX_LAYOUT, *group, *runtimes, f"bytecode={bytecode}",
            *(parts[(r, a)].asset_hash for r in runtimes for a in group)]).encode()).hexdigest()
        key = hashlib.sha256(f"{asset_hash}\0{builder_version()}\0{sorted(pythons.items())}".encode()).hexdigest()
        entry = cache_dir / "builds" / f"variants-{key}"

        def fill(tree: Path, by_runtime: dict[str, dict[str, archive.Member]] = by_runtime) -> dict[str, Any]:
            return _merge(by_runtime, pythons, tree / ASSET, cache_dir, workers)

        meta, filled = cache.materialize_verified(
            entry, fill, ("sha256", "zipped_bytes", "unzipped_bytes"),
            lambda meta, entry=entry: cache.intact(entry / ASSET, meta["zipped_bytes"], meta["sha256"]),
            lambda entry=entry: report(f"warning: {source.what}: its cached build in {entry} is damaged; building "
                                       "it again"))
        report(f"{source.what}: {'/'.join(group)} for {', '.join(runtimes)}: {meta['unzipped_bytes'] / 1e6:.1f} MB "
               f"unzipped [{'miss' if filled else 'hit'}]")
        first = parts[(runtimes[0], group[0])]
        built.append(Build(
            name=source.name, kind="layer", zip=entry / ASSET, sha256=meta["sha256"],
            zipped_bytes=meta["zipped_bytes"], unzipped_bytes=meta["unzipped_bytes"],
            cache="miss" if filled else "hit", builder=first.builder, asset_hash=asset_hash, runtime=first.runtime,
            architecture=first.architecture, platform=first.platform, packages=first.packages, bytecode=bytecode,
            seconds=round(time.perf_counter() - started, 3),
            warnings=list(dict.fromkeys(w for r in runtimes for a in group for w in parts[(r, a)].warnings)),
            runtimes=list(runtimes), architectures=list(group),
            package_cache={count: sum(parts[(r, a)].package_cache.get(count, 0) for r in runtimes for a in group)
                           for count in ("reused", "compiled", "installed")},
            packages_by_runtime={r: parts[(r, group[0])].packages for r in runtimes}))
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
                moved = site_packages(runtime) + name[len(_PREFIX):]
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
            failed = {f.path for f in compile_sources(pythons[runtime], jobs, workers)}
            tag = "cpython-" + runtime.removeprefix("python").replace(".", "")
            for path, _ in jobs:
                pyc = path.parent / "__pycache__" / f"{path.stem}.{tag}.pyc"
                if path not in failed and pyc.is_file():
                    compiled.append(archive.compress(pyc.relative_to(tree).as_posix(), pyc.read_bytes()))
    return compiled
