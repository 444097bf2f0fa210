"""The Docker-free layer build: install wheels for the target, merge the layer's own code, zip, cache.

Where the zip of a layer is made. The build is keyed by everything that decides its bytes (the layer's
files, the runtime, the architecture, the kit's and uv's versions), so an unchanged layer is never rebuilt.
A finished build appears in the cache in one atomic rename, under a lock: two ``cdk synth`` at once, or an
interrupted one, never leave a half-written entry that a later build would trust.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from layerkit import __version__
from layerkit.archive import unzipped_size, write_deterministic_zip
from layerkit.errors import BuildError, LayerSourceError, MissingInterpreterError, MissingWheelError
from layerkit.installed import Overlap, drop_installer_bookkeeping, losing_copies, overlaps, read_distributions
from layerkit.interpreters import find_python
from layerkit.source import LayerSource
from layerkit.targets import Target

BUILDER = "local"
KIT_VERSION = __version__

Reporter = Callable[[str], None]


def report_to_stderr(message: str) -> None:
    """Default progress reporter: one line per step on stderr, so stdout stays machine-readable."""
    print(f"layerkit: {message}", file=sys.stderr, flush=True)


def default_cache_dir() -> Path:
    """``$LAYERKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/layerkit``, else ``~/.cache/layerkit``."""
    if env := os.environ.get("LAYERKIT_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "layerkit"


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else the default, made absolute.

    uv runs in the layer folder (for relative ``--find-links``) and the sandbox mounts folders by path: a
    relative cache path would point somewhere else there (a build once installed into the layer folder).
    """
    return Path(cache_dir or default_cache_dir()).absolute()


@functools.cache
def uv_binary() -> str:
    """The uv executable pinned by the project (the ``uv`` package), else one on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise BuildError("uv is not installed; run 'pip install uv' (or 'make setup')") from None
        return found


@functools.cache
def uv_version() -> str:
    binary = Path(uv_binary())
    # The pinned `uv` package names its version in its dist-info folder: no need to start uv on a cache hit.
    for site_dir in (Path(p) for p in sys.path if p.endswith("site-packages")):
        for info in site_dir.glob("uv-*.dist-info"):
            if binary.parent == Path(sys.prefix) / "bin" or str(binary).startswith(str(site_dir)):
                return info.name.removeprefix("uv-").removesuffix(".dist-info")
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def builder_version() -> str:
    """What else decides the bytes of a local build; part of the cache key, not of the asset hash."""
    return f"layerkit {KIT_VERSION}; uv {uv_version()}"


@dataclass(frozen=True)
class LayerBuild:
    """A built layer: the zip in the cache and what a user wants to know about it."""

    name: str
    zip: Path
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    cache: str
    builder: str
    asset_hash: str
    runtime: str
    architecture: str
    platform: str
    packages: list[str]
    bytecode: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["zip"] = str(self.zip)
        return data


def build_layer(
    layer_dir: str | Path,
    target: Target,
    *,
    cache_dir: Path | None = None,
    report: Reporter = report_to_stderr,
    bytecode: bool = True,
) -> LayerBuild:
    """Build ``layer_dir`` for ``target`` without Docker, or return the cached build of the same inputs.

    With ``bytecode`` (the default), the layer ships ``.pyc`` compiled by a Python of the target version with
    ``--invalidation-mode unchecked-hash``: Lambda uses them as they are, where timestamp-checked ones (pip's)
    are stale after the CDK zips every file with a 1980 date, and every cold start compiles the layer again.
    Where no such Python is found, the layer is built without them, with a warning.

    Example::

        build = build_layer("layers/my_layer", Target("python3.12", "arm64"))
        print(build.zip, build.sha256, build.cache)
    """
    started = time.perf_counter()
    source = LayerSource.load(layer_dir)
    for warning in source.warnings:
        report(f"warning: {warning}")
    python = _bytecode_python(source, target, report) if bytecode else None
    asset_hash = source.fingerprint(target, bytecode=python is not None)
    key = hashlib.sha256(f"{asset_hash}\0{builder_version()}".encode()).hexdigest()
    layers_dir = resolve_cache_dir(cache_dir) / "layers"
    entry = layers_dir / key

    meta, cache = _read_entry(entry), "hit"
    if meta is None:
        layers_dir.mkdir(parents=True, exist_ok=True)
        with _locked(layers_dir / f"{key}.lock"):
            meta = _read_entry(entry)  # another process may have built it while we waited
            if meta is None:
                meta, cache = _build_into(entry, source, target, report, python), "miss"
    return _result(entry, meta, source, target, asset_hash, cache, started, report)


def _bytecode_python(source: LayerSource, target: Target, report: Reporter) -> Path | None:
    try:
        return find_python(target.python_version)
    except MissingInterpreterError:
        report(
            f"warning: layer {source.name}: no Python {target.python_version} on this machine, so the layer "
            f"ships no .pyc and each cold start compiles it; install python{target.python_version} "
            "(e.g. pyenv install) for faster cold starts, or pass bytecode=False to silence this"
        )
        return None


def _compile_bytecode(python: Path, python_dir: Path) -> None:
    """Deterministic ``.pyc`` as Lambda will see them: paths under /opt/python, hashed, never re-checked.

    One compileall process per core, each given a share of the top-level entries: compileall's own ``-j``
    workers would outlive a killed build and write into its folder; these die with it.
    """
    def weight(entry: Path) -> int:
        files = entry.rglob("*.py") if entry.is_dir() else [entry]
        return sum(f.stat().st_size for f in files)

    shares: list[list[Path]] = [[] for _ in range(max(1, min(os.cpu_count() or 1, 8)))]
    loads = [0] * len(shares)
    for entry, size in sorted(((e, weight(e)) for e in python_dir.iterdir()), key=lambda item: -item[1]):
        lightest = loads.index(min(loads))
        shares[lightest].append(entry)
        loads[lightest] += size
    procs = [
        subprocess.Popen(
            [str(python), "-I", "-S", "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
             "-s", str(python_dir), "-p", "/opt/python", *map(str, share)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_dies_with_us(),
        )
        for share in shares if share
    ]
    for proc in procs:
        # A file that does not compile for the target (e.g. a template named .py) ships as source, as pip does.
        proc.wait()


def materialize(entry: Path, fill: Callable[[Path], None]) -> Path:
    """The cache folder ``entry``, filled by ``fill`` (given an empty folder) the first time it is asked for.

    It appears in one atomic rename, so a concurrent process either sees nothing or all of it, and an
    interrupted fill leaves only a ``.tmp-`` folder nobody reads.
    """
    if entry.is_dir():
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=entry.parent))
    try:
        (work / "tree").mkdir()
        fill(work / "tree")
        try:
            os.rename(work / "tree", entry)
        except OSError:
            if not entry.is_dir():  # anything but "another process made it first" is a real failure
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return entry


def _read_entry(entry: Path) -> dict[str, Any] | None:
    try:
        return json.loads((entry / "build.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _result(
    entry: Path, meta: dict[str, Any], source: LayerSource, target: Target, asset_hash: str, cache: str,
    started: float, report: Reporter,
) -> LayerBuild:
    build = LayerBuild(
        name=source.name,
        zip=entry / "layer.zip",
        sha256=meta["sha256"],
        zipped_bytes=meta["zipped_bytes"],
        unzipped_bytes=meta["unzipped_bytes"],
        cache=cache,
        builder=BUILDER,
        asset_hash=asset_hash,
        runtime=target.runtime,
        architecture=target.architecture,
        platform=target.platform_tag,
        packages=meta["packages"],
        bytecode=meta["bytecode"],
        seconds=round(time.perf_counter() - started, 3),
        warnings=source.warnings,
    )
    if cache == "hit":
        report(f"{source.name}: cache hit for {target} ({build.sha256[:12]})")
    return build


def _build_into(
    entry: Path, source: LayerSource, target: Target, report: Reporter, python: Path | None
) -> dict[str, Any]:
    """Build into a temporary folder, then rename it to ``entry``; returns the build's ``build.json``."""
    layers_dir = entry.parent
    for stale in layers_dir.glob(f".tmp-{entry.name}-*"):  # left by an interrupted build; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=layers_dir))
    try:
        tree = work / "tree"
        python_dir = tree / "python"
        python_dir.mkdir(parents=True)
        packages: list[str] = []
        if source.requirements.names:
            packages = _install(source, target, python_dir, report)
            shutil.rmtree(python_dir / "bin", ignore_errors=True)  # scripts whose shebang is this machine's Python
        for path in source.files:
            rel = path.relative_to(source.python_dir)
            dest = python_dir / rel
            if dest.exists():
                raise LayerSourceError(
                    f"layer {source.name}: python/{rel.as_posix()} is also installed by a requirement; "
                    "rename your module so that it does not overwrite the dependency"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
        if python is not None:
            started = time.perf_counter()
            _compile_bytecode(python, python_dir)
            report(f"{source.name}: compiled .pyc with Python {target.python_version} in "
                   f"{time.perf_counter() - started:.1f} s")
        out = work / "out"
        out.mkdir()
        write_deterministic_zip(tree, out / "layer.zip")
        data = (out / "layer.zip").read_bytes()
        meta = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "zipped_bytes": len(data),
            "unzipped_bytes": unzipped_size(out / "layer.zip"),
            "packages": packages,
            "runtime": target.runtime,
            "architecture": target.architecture,
            "bytecode": python is not None,
            "builder_version": builder_version(),
        }
        (out / "build.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        os.replace(out, entry)  # the one step that makes the build visible
        return meta
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _dies_with_us() -> Callable[[], None]:
    """A ``preexec_fn``: a killed build must not leave uv or compileall writing into the cache."""
    import ctypes  # here, not at the top: a cached build never starts a child

    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def in_child() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the build died between fork and prctl: nobody would kill us
            os._exit(1)

    return in_child


PR_SET_PDEATHSIG = 1

_HASH_MISMATCH = re.compile(r"Hash mismatch for `([^`]+)`")
_NO_WHEEL = re.compile(r"Wheels are required for `([^`]+)`|Because (\S+?)(?:==\S+)? has no (?:usable )?wheels")


def _install(source: LayerSource, target: Target, deps: Path, report: Reporter) -> list[str]:
    count = len(source.requirements.names)
    report(
        f"{source.name}: installing {count} requirement{'s' * (count != 1)} for {target.runtime} "
        f"(cp{target.python_version.replace('.', '')}, {target.platform_tag}) with uv {uv_version()}"
    )
    started = time.perf_counter()
    _run_uv(source, target, deps, "--require-hashes" if source.requirements.hashed else None)
    _settle_overlaps(source, target, deps, report)
    drop_installer_bookkeeping(deps)
    packages = sorted(
        p.name.removesuffix(".dist-info").replace("-", "==", 1) for p in deps.glob("*.dist-info")
    )
    report(f"{source.name}: installed {len(packages)} packages in {time.perf_counter() - started:.1f} s")
    return packages


def _run_uv(source: LayerSource, target: Target, deps: Path, *extra: str | None) -> None:
    """``uv pip install`` of the layer's requirements into ``deps``, for the target, plus ``extra`` options."""
    command = [
        uv_binary(), "pip", "install",
        "--requirements", str(source.requirements_file),
        "--target", str(deps),
        # The interpreter only runs the resolver; version and platform below are the target's.
        "--python", sys.executable,
        "--python-version", target.python_version,
        "--python-platform", target.uv_platform,
        "--only-binary", ":all:",
        "--no-compile",  # .pyc for the build machine's Python would be dead weight on Lambda
        "--link-mode", "copy",  # a hardlinked file edited later would edit uv's cache
        "--no-progress",
        *(option for option in extra if option),
    ]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=source.root, preexec_fn=_dies_with_us()
    )
    if proc.returncode != 0:
        raise _install_error(source, target, proc.stderr)


def _settle_overlaps(source: LayerSource, target: Target, deps: Path, report: Reporter) -> None:
    """Where two distributions ship one path, keep the copy pip's order would: the same layer every build."""
    found = overlaps(read_distributions(deps))
    if undecided := [overlap for overlap in found if overlap.winner is None]:
        raise BuildError(
            f"layer {source.name}: {undecided[0].describe()}, and neither depends on the other, so the layer "
            "would change with the order the files happen to be written in; keep only one of them in "
            f"{source.requirements_file.name} (or only one of the requirements that pull them in)"
        )
    groups: dict[tuple[str, ...], list[Overlap]] = {}
    for overlap in found:
        groups.setdefault(overlap.claimants, []).append(overlap)
    for claimants, group in groups.items():
        winner = group[0].winner
        others = " and ".join(name for name in claimants if name != winner.name)
        report(
            f"{source.name}: {' and '.join(claimants)} both ship {group[0].path}"
            f"{f' (and {len(group) - 1} more files)' if len(group) > 1 else ''}; the layer keeps "
            f"{winner.name}'s, which depends on {others}, as pip's install order would"
        )
    if not (stale := losing_copies(found, deps)):
        return
    winners = sorted({overlap.winner.name: overlap.winner for overlap in stale}.values(), key=lambda d: d.name)
    reinstall = [option for dist in winners for option in ("--reinstall-package", dist.name)]
    if source.requirements.hashed:  # then every installed distribution is in the file, with its hashes
        _run_uv(source, target, deps, "--no-deps", "--require-hashes", *reinstall)
    else:
        _run_uv(source, target, deps, "--no-deps", *reinstall, *(dist.pin for dist in winners))
    if left := losing_copies(found, deps):
        raise BuildError(f"layer {source.name}: {left[0].describe()}, and installing {left[0].winner.name} "
                         "again did not restore its copy; report this with the layer's requirements")


def _install_error(source: LayerSource, target: Target, stderr: str) -> Exception:
    match = _NO_WHEEL.search(stderr)
    if match:
        package = match.group(1) or match.group(2)
        return MissingWheelError(
            f"layer {source.name}: {package} has no wheel for {target.runtime} on {target.platform_tag}; "
            f"pin a version of {package} that publishes a manylinux wheel for {target.machine} "
            "(see its files on PyPI), replace it, or build this layer with Docker "
            "(-c layerkit:builder=docker) so that it is compiled in the Lambda build image"
        )
    if mismatch := _HASH_MISMATCH.search(stderr):
        return BuildError(
            f"layer {source.name}: the file downloaded for {mismatch.group(1)} does not match any --hash in "
            f"{source.requirements_file.name}; if the new file is trusted, regenerate the hashes "
            "(uv pip compile --generate-hashes), otherwise check which index served it"
        )
    detail = " ".join(line.strip() for line in stderr.strip().splitlines() if line.strip())[-500:]
    return BuildError(f"layer {source.name}: installing requirements for {target} failed: {detail}")
