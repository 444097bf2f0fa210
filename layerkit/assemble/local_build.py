"""The Docker-free build: a layer or function folder in, a deterministic zip out, cached by its inputs.

Where the zip of a layer or a function is made. Both go through the same steps: read the folder and its
dependency declaration (:mod:`layerkit.sources`), pin the distributions for the target
(:mod:`layerkit.install.pins`), install each package once (:mod:`layerkit.install.package_cache`), apply the
content rules (:mod:`layerkit.rules`), and assemble the zip from the packages' compressed members and the folder's
own code (:mod:`layerkit.core.archive`).
Only where the code lands differs: ``python/`` in a layer, the root in a function.

A build is keyed by everything that decides its bytes (the asset hash, and the kit's and uv's versions), so
an unchanged folder is never rebuilt; it appears in the cache in one atomic rename (:mod:`layerkit.core.cache`).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layerkit.assemble.build_result import Build
from layerkit.core import cache, progress
from layerkit.core.cache_keys import builder_version
from layerkit.core.spelling import in_use
from layerkit.core.targets import Destination, Target
from layerkit.install import bytecode as pyc
from layerkit.installed.slim import Slim
from layerkit.rules.size import Shares
from layerkit.sources import SourceFolder

if TYPE_CHECKING:
    pass

BUILDER = "local"
ASSET = "asset.zip"

Reporter = Callable[[str], None]


def report_to_stderr(message: str) -> None:
    """Default progress reporter: one line per step on stderr, so stdout stays machine-readable."""
    print(f"layerkit: {message}", file=sys.stderr, flush=True)


def build_layer(
    layer_dir: str | Path,
    target: Target,
    *,
    cache_dir: Path | None = None,
    report: Reporter = report_to_stderr,
    bytecode: bool = True,
    workers: int | None = None,
    excludes: tuple[str, ...] = (),
    slim: Slim | None = None,
) -> Build:
    """Build ``layer_dir`` for ``target`` without Docker, or return the cached build of the same inputs.

    With ``bytecode`` (the default), the layer ships ``.pyc`` compiled by a Python of the target version with
    ``--invalidation-mode unchecked-hash``: Lambda uses them as they are (see :mod:`layerkit.install.bytecode`).
    Where no such Python is found, the layer is built without them, with a warning. ``workers`` caps the
    processes and threads the build uses (default: one per core); the zip is the same whatever it is.
    ``excludes`` are glob patterns of ``python/`` that never deploy, beside the never-deploy list
    (:mod:`layerkit.shipping.selection`); ``slim`` leaves parts of the installed packages out
    (:mod:`layerkit.installed.slim`).

    Example::

        build = build_layer("layers/my_layer", Target("python3.12", "arm64"))
        print(build.zip, build.sha256, build.cache)
    """
    return build_source(SourceFolder.layer(layer_dir, tuple(excludes)), target, cache_dir=cache_dir,
                        report=report, bytecode=bytecode, workers=workers, slim=slim)


def build_function(
    entry: str | Path,
    target: Target,
    *,
    excludes: tuple[str, ...] = (),
    provided: Mapping[str, str] | None = None,
    label: str = "",
    cache_dir: Path | None = None,
    report: Reporter = report_to_stderr,
    bytecode: bool = True,
    workers: int | None = None,
    slim: Slim | None = None,
) -> Build:
    """Build a function folder: its code at the zip's root, its dependencies installed beside it.

    ``provided`` maps distribution names to the versions the function's layers already ship: those are not
    installed again. ``excludes`` are glob patterns of files that never deploy (``events/`` and ``tests/``
    never do, nor the never-deploy list of :mod:`layerkit.shipping.selection`).
    """
    source = SourceFolder.function(entry, excludes, label)
    return build_source(source, target, cache_dir=cache_dir, report=report, bytecode=bytecode, workers=workers,
                        provided=dict(provided or {}), slim=slim)


#: What a build entry's metadata must hold; an entry without one of them is damaged (built again).
REQUIRED = ("sha256", "zipped_bytes", "unzipped_bytes", "packages", "bytecode", "warnings", "provided_by_layers",
            "left_out", "package_cache", "shares")


def build_source(source: SourceFolder, target: Target, *, cache_dir: Path | None = None,
                 report: Reporter = report_to_stderr, bytecode: bool = True, workers: int | None = None,
                 provided: dict[str, str] | None = None, slim: Slim | None = None,
                 options: tuple[str, ...] = ()) -> Build:
    """Build a loaded :class:`~layerkit.sources.SourceFolder` (what :func:`build_layer` and
    :func:`build_function` do after loading the folder). Its messages write a fix as the user types it where
    they are (:mod:`layerkit.core.spelling`)."""
    started = time.perf_counter()
    slim = slim or Slim()
    root = cache.resolve_cache_dir(cache_dir)
    provided = layers_provide(source, target, provided, cache_dir=root, report=report)

    def fingerprint(with_pyc: bool) -> str:
        return asset_hash_of(source, target, bytecode=with_pyc, provided=provided, slim=slim, options=options)

    python = pyc.compiler(source.what, target.python_version, report, fix=in_use().bytecode,
                          asset_hashes=lambda: (fingerprint(True), fingerprint(False))) if bytecode else None
    asset_hash = fingerprint(python is not None)
    key = hashlib.sha256(f"{asset_hash}\0{builder_version()}".encode()).hexdigest()
    entry = root / "builds" / key

    def fill(tree: Path) -> dict[str, Any]:
        from layerkit.assemble.contents import Contents  # lazy: a cache hit installs nothing (~40 ms of imports)

        return Contents(source, target, python, root, report, workers, provided or {}, slim).write(
            tree / ASSET)

    with progress.reporting(report):
        meta, filled = cache.materialize_verified(
            entry, fill, REQUIRED, lambda meta: cache.intact(entry / ASSET, meta["zipped_bytes"], meta["sha256"]),
            lambda: report(f"warning: {source.what}: its cached build in {entry} is damaged; building it again"))
    for warning in meta["warnings"]:
        report(f"warning: {warning}")
    build = Build(
        name=source.name, kind="layer" if source.destination is Destination.LAYER else "function",
        zip=entry / ASSET, sha256=meta["sha256"], zipped_bytes=meta["zipped_bytes"],
        unzipped_bytes=meta["unzipped_bytes"], cache="miss" if filled else "hit", builder=BUILDER,
        asset_hash=asset_hash, runtime=target.runtime, architecture=target.architecture,
        platform=target.platform_tag, packages=meta["packages"], bytecode=meta["bytecode"],
        seconds=round(time.perf_counter() - started, 3), warnings=meta["warnings"],
        provided_by_layers=meta["provided_by_layers"], package_cache=meta["package_cache"],
        left_out=meta["left_out"], shares=Shares(**meta["shares"]),
    )
    if not filled:
        report(f"{source.name}: cache hit for {target} ({build.sha256[:12]})")
    return build


def asset_hash_of(source: SourceFolder, target: Target, *, bytecode: bool, provided: Mapping[str, str],
                  slim: Slim, options: tuple[str, ...] = ()) -> str:
    """The asset hash of a build's inputs: the one both builders register their code under, so that switching
    between Docker and the local build never gives a new layer version or new function code."""
    return source.fingerprint(target, bytecode=bytecode, provided=dict(provided), options=(*slim.options(), *options))


def layers_provide(source: SourceFolder, target: Target, provided: Mapping[str, str] | None, *, cache_dir: Path,
                   report: Reporter) -> dict[str, str]:
    """Of the distributions a function's layers ship (``provided``, name -> version), those its own declaration
    installs at the same version: what it does not ship again, and the only part of its layers that decides its
    code. A layer's pin that the function does not install is no part of the function's asset, so a layer change
    gives one new layer version and leaves its functions' code as it is."""
    if not provided or source.declaration is None or not source.declaration.requirements:
        return {}
    from layerkit.install import pins  # lazy: a layer's build never resolves (packaging, uv)

    installs = pins.resolved(source.declaration, target, what=source.what, cache_dir=cache_dir, report=report)
    return {name: version for name, version in sorted(provided.items()) if installs.get(name) == version}


