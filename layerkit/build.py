"""The Docker-free build: a layer or function folder in, a deterministic zip out, cached by its inputs.

Where the zip of a layer or a function is made. Both go through the same steps: read the folder and its
dependency declaration (:mod:`layerkit.sources`), pin the distributions for the target (:mod:`layerkit.pins`),
install each package once (:mod:`layerkit.packages`), apply the content rules (:mod:`layerkit.rules`), and
assemble the zip from the packages' compressed members and the folder's own code (:mod:`layerkit.archive`).
Only where the code lands differs: ``python/`` in a layer, the root in a function.

A build is keyed by everything that decides its bytes (the asset hash, and the kit's and uv's versions), so
an unchanged folder is never rebuilt; it appears in the cache in one atomic rename (:mod:`layerkit.cache`).
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layerkit import __version__, cache, uv
from layerkit import bytecode as pyc
from layerkit.errors import BuildError, LayerSourceError, NativeCodeError, TooLargeError
from layerkit.rules import IN_CONSTRUCT, Shares, Spelling
from layerkit.slim import Slim
from layerkit.sources import SourceFolder
from layerkit.targets import Destination, Target

if TYPE_CHECKING:
    from layerkit.packages import Package
    from layerkit.sources.declaration import Declaration

BUILDER = "local"
ASSET = "asset.zip"

Reporter = Callable[[str], None]


def report_to_stderr(message: str) -> None:
    """Default progress reporter: one line per step on stderr, so stdout stays machine-readable."""
    print(f"layerkit: {message}", file=sys.stderr, flush=True)


def builder_version() -> str:
    """What else decides the bytes of a local build; part of the cache key, not of the asset hash."""
    import deflate

    return f"layerkit {__version__}; uv {uv.version()}; deflate {deflate.__version__}"


@dataclass(frozen=True)
class Build:
    """A built layer or function: the zip in the cache and what a user wants to know about it."""

    name: str
    kind: str  # "layer" or "function"
    zip: Path
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    cache: str  # "hit" or "miss"
    builder: str
    asset_hash: str
    runtime: str
    architecture: str
    platform: str
    packages: list[str]
    bytecode: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)
    provided_by_layers: list[str] = field(default_factory=list)
    package_cache: dict[str, int] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)  # distributions left out (Slim.without)
    shares: Shares = field(default_factory=Shares)  # what of it could be left out to fit Lambda's limit

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["zip"] = str(self.zip)
        return data


#: The name the kit's API has always given a layer's build.
LayerBuild = Build


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
    ``--invalidation-mode unchecked-hash``: Lambda uses them as they are (see :mod:`layerkit.bytecode`).
    Where no such Python is found, the layer is built without them, with a warning. ``workers`` caps the
    processes and threads the build uses (default: one per core); the zip is the same whatever it is.
    ``excludes`` are glob patterns of ``python/`` that never deploy, beside the never-deploy list
    (:mod:`layerkit.shipping`); ``slim`` leaves parts of the installed packages out (:mod:`layerkit.slim`).

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
    never do, nor the never-deploy list of :mod:`layerkit.shipping`).
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
                 spelling: Spelling = IN_CONSTRUCT, options: tuple[str, ...] = ()) -> Build:
    """Build a loaded :class:`~layerkit.sources.SourceFolder` (what :func:`build_layer` and
    :func:`build_function` do after loading the folder). ``spelling`` is how its messages write a fix (as a
    construct's argument, or as ``layerkit build``'s option)."""
    started = time.perf_counter()
    slim = slim or Slim()
    root = cache.resolve_cache_dir(cache_dir)
    provided = layers_provide(source, target, provided, cache_dir=root, report=report)

    def fingerprint(with_pyc: bool) -> str:
        return source.fingerprint(target, bytecode=with_pyc, provided=provided, options=(*slim.options(), *options))

    python = pyc.compiler(source.what, target.python_version, report, fix=spelling.bytecode,
                          asset_hashes=lambda: (fingerprint(True), fingerprint(False))) if bytecode else None
    asset_hash = fingerprint(python is not None)
    key = hashlib.sha256(f"{asset_hash}\0{builder_version()}".encode()).hexdigest()
    entry = root / "builds" / key

    def fill(tree: Path) -> dict[str, Any]:
        return _Assembly(source, target, python, root, report, workers, provided or {}, slim, spelling).write(
            tree / ASSET)

    meta, filled = cache.materialize(entry, fill, REQUIRED)
    if not filled and not cache.intact(entry / ASSET, meta["zipped_bytes"], meta["sha256"]):
        report(f"warning: {source.what}: its cached build in {entry} is damaged; building it again")
        cache.discard(entry)
        meta, filled = cache.materialize(entry, fill, REQUIRED)
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


def layers_provide(source: SourceFolder, target: Target, provided: Mapping[str, str] | None, *, cache_dir: Path,
                   report: Reporter) -> dict[str, str]:
    """Of the distributions a function's layers ship (``provided``, name -> version), those its own declaration
    installs at the same version: what it does not ship again, and the only part of its layers that decides its
    code. A layer's pin that the function does not install is no part of the function's asset, so a layer change
    gives one new layer version and leaves its functions' code as it is."""
    if not provided or source.declaration is None or not source.declaration.requirements:
        return {}
    from layerkit import pins

    installs = pins.resolved(source.declaration, target, what=source.what, cache_dir=cache_dir, report=report)
    return {name: version for name, version in sorted(provided.items()) if installs.get(name) == version}


class _Assembly:
    """One cache miss: pin, install, check and zip. Nothing of it is visible until the entry is renamed in."""

    def __init__(self, source: SourceFolder, target: Target, python: Path | None, cache_dir: Path,
                 report: Reporter, workers: int | None, provided: dict[str, str], slim: Slim,
                 spelling: Spelling) -> None:
        self.source, self.target, self.python, self.cache_dir = source, target, python, cache_dir
        self.report, self.workers, self.provided, self.slim = report, workers, provided, slim
        self.spelling = spelling
        self.prefix = source.destination.zip_prefix
        self.warnings: list[str] = list(source.warnings)
        self.left_out: list[str] = []

    def write(self, destination: Path) -> dict[str, Any]:
        from layerkit import archive

        with cache.scratch(self.cache_dir / "builds", "work") as work:
            packages, provided_by_layers = self._packages(work)
            own, failures = self._own_code(work)
            members = self._merge(own, packages)
            self._check(members)
            shares = self._check_size(members, packages)
            zipped_bytes, sha256 = archive.write_zip(destination, members)
        failures += [f for package in packages for f in package.bytecode_failures]
        if failures:
            self.warnings.append(
                f"{self.source.what}: {len(failures)} file(s) do not compile for Python {self.target.python_version} "
                f"and ship as source, compiled again at each cold start (first: {failures[0]}); fix them, or leave "
                "them if they are never imported"
            )
        return {
            "sha256": sha256, "zipped_bytes": zipped_bytes,
            "unzipped_bytes": sum(m.size for m in members),
            "packages": [f"{p.name}=={p.version}" for p in packages], "bytecode": self.python is not None,
            "bytecode_failures": failures, "warnings": self.warnings, "provided_by_layers": provided_by_layers,
            "package_cache": {"reused": sum(p.reused for p in packages),
                              "installed": sum(not p.reused for p in packages)},
            "left_out": self.left_out, "shares": asdict(shares),
            "runtime": self.target.runtime, "architecture": self.target.architecture,
            "builder_version": builder_version(),
        }

    def _packages(self, work: Path) -> tuple[list[Package], list[str]]:
        """The packages of the declaration, from the package cache where it has them, installed where not."""

        declaration = self.source.declaration
        if declaration is None or not declaration.requirements:
            self._check_installed_copies({})
            return [], []
        started = time.perf_counter()
        found = self._recalled(declaration, work)
        if found is None:
            found = self._installed(declaration, declaration, work)
        versions = {p.name: p.version for p in found}
        self._check_agreement(versions)
        self._check_installed_copies(versions)
        provided = [p for p in found if self.provided.get(p.name) == p.version]
        if provided:
            self.report(f"{self.source.what}: {', '.join(f'{p.name}=={p.version}' for p in provided)} already in "
                        "its layers: not shipped again")
        left_out = [p for p in found if p.name in self.slim.without and p not in provided]
        self._note_left_out(left_out, {p.name for p in found})
        shipped = [p for p in found if p not in provided and p not in left_out]
        reused = sum(p.reused for p in shipped)
        self.report(f"{self.source.what}: {len(shipped)} package(s) for {self.target.runtime} "
                    f"({self.target.python_tag}, {self.target.platform_tag}) from {declaration.kind}: {reused} from "
                    f"the package cache, {len(shipped) - reused} installed with uv {uv.version()}, compiled and "
                    f"compressed in {time.perf_counter() - started:.1f} s")
        return shipped, [f"{p.name}=={p.version}" for p in provided]

    def _recalled(self, declaration: Declaration, work: Path) -> list[Package] | None:
        """An exactly pinned declaration's packages from the package cache, the missing ones installed alone;
        None when the declaration is not one, or when the result would lack a dependency (resolve then)."""
        from dataclasses import replace

        from layerkit import packages

        recalled = packages.recall(declaration, self.target, self.source.destination, compiled=self.python is not None,
                                   cache_dir=self.cache_dir, slim=self.slim)
        if recalled is None or not recalled[0]:
            return None  # not exactly pinned, or a first build: resolve
        found, missing = recalled
        if missing:  # installed without their dependencies: the check below says whether that was enough
            found = found + self._installed(replace(declaration, requirements=tuple(missing), locked=True),
                                            declaration, work)
        return sorted(found, key=lambda p: p.name) if packages.complete(found, self.target) else None

    def _installed(self, wanted: Declaration, declaration: Declaration, work: Path) -> list[Package]:
        """Install ``wanted`` (the declaration, or some of its pins) and make its package entries."""
        from layerkit import packages, pins

        compiled = self.python is not None
        installed = pins.pin(wanted, self.target, work / f"install-{len(list(work.iterdir()))}",
                             what=self.source.what, cache_dir=self.cache_dir, report=self.report, slim=self.slim)
        prepared = packages.prepare(installed, self.target, self.source.destination, python=self.python,
                                    cache_dir=self.cache_dir, what=self.source.what, workers=self.workers)
        packages.remember(installed, prepared, declaration, self.target, self.source.destination, compiled=compiled,
                          cache_dir=self.cache_dir, slim=self.slim)
        return prepared

    def _check_agreement(self, pinned: dict[str, str]) -> None:
        """A second declaration in the folder must ask for nothing the first does not install."""
        from packaging.specifiers import SpecifierSet

        primary = self.source.declarations[0]
        for other in self.source.declarations[1:]:
            for requirement in other.for_target(self.target):
                if requirement.name is None:
                    continue
                version = pinned.get(requirement.name)
                if version is None or not SpecifierSet(requirement.specifier).contains(version, prereleases=True):
                    installs = f"installs {requirement.name} {version}" if version else f"has no {requirement.name}"
                    raise LayerSourceError(
                        f"{self.source.what}: {other.kind} and {primary.kind} disagree: {requirement.origin} asks "
                        f"for {requirement.text.split(';')[0].strip()}, {primary.kind} {installs}; keep one "
                        f"declaration, or refresh the other from it"
                    )

    def _check_installed_copies(self, wanted: dict[str, str]) -> None:
        copies = self.source.installed_copies()
        if not copies:
            return
        from layerkit import rules

        folder = "python/" if self.source.destination is Destination.LAYER else "the function folder"
        kind = self.source.declaration.kind if self.source.declaration else "requirements.txt"
        for copy in copies:
            if copy.name in wanted:
                raise LayerSourceError(
                    f"{self.source.what}: {copy.name} {copy.version} is installed into {folder} by hand "
                    f"({copy.dist_info}) and {kind} installs it too; delete the installed copy (its package and "
                    f"{copy.dist_info}): the kit installs {copy.name} for {self.target}"
                )
        self.warnings += [f.message for f in rules.installed_copies(
            self.source.what, folder, [(c.name, c.version) for c in copies], kind)]

    def _own_code(self, work: Path) -> tuple[list[Any], list[str]]:
        """The folder's own files, copied (never compiled in place), compiled, then compressed."""
        import shutil

        from layerkit import archive, bytecode

        code = work / "code"
        files = []
        for path in self.source.code_files:
            rel = path.relative_to(self.source.code_root)
            copy = code / rel
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            files.append(copy)
        failures = []
        if self.python is not None and files:
            found = bytecode.compile_sources(self.python, bytecode.sources_of(code, self.source.destination.value),
                                             self.workers)
            failures = [f"{f.path.relative_to(code).as_posix()}: {f.reason}" for f in found]
        all_files = sorted(p for p in code.rglob("*") if p.is_file()) if code.exists() else []
        names = [self.prefix + p.relative_to(code).as_posix() for p in all_files]
        return archive.compress_files(zip(names, all_files, strict=True), self.workers, work / "spill"), failures

    def _merge(self, own: list[Any], packages: list[Any]) -> list[Any]:
        """Every member once: where two packages ship one path, pip's order decides; a package never
        silently replaces the folder's own file."""
        from layerkit.installed import overlaps

        files = {p.name: p.files for p in packages}
        found = overlaps(files, {p.name: p.requires for p in packages})
        if undecided := sorted((o for o in found if o.winner is None), key=lambda o: _bytecode_last(o.path)):
            raise BuildError(
                f"{self.source.what}: {undecided[0].describe()}, and neither depends on the other, so the result "
                "would depend on the order files are written in; keep only one of them (or one of the "
                "requirements that pull them in)"
            )
        losers = {(name, o.path) for o in found for name in o.claimants if name != o.winner}
        for claimants in sorted({o.claimants for o in found}):
            group = sorted((o for o in found if o.claimants == claimants), key=lambda o: _bytecode_last(o.path))
            winner = group[0].winner
            others = " and ".join(n for n in claimants if n != winner)
            more = f" (and {len(group) - 1} more files)" if len(group) > 1 else ""
            self.report(f"{self.source.what}: {' and '.join(claimants)} both ship {group[0].path}{more}; it keeps "
                        f"{winner}'s, which depends on {others}, as pip's install order would")
        own_names = {m.name for m in own}
        members = list(own)
        clashes = []
        for package in packages:
            for member in package.members():
                if (package.name, member.name) in losers:
                    continue
                name = self.prefix + member.name
                if name in own_names:
                    clashes.append((name, package.name))
                members.append(member if not self.prefix else _renamed(member, name))
        if clashes:
            name, package = min(clashes, key=lambda clash: _bytecode_last(clash[0]))
            raise LayerSourceError(f"{self.source.what}: {name} is also installed by {package} (a dependency); "
                                   "rename your module so that it does not replace the dependency's")
        return members

    def _note_left_out(self, left_out: list[Package], found: set[str]) -> None:
        """Say which distributions ``Slim.without`` leaves out, and what then runs on Lambda instead."""
        from layerkit.slim import PROVIDED_BY_RUNTIME

        for name in self.slim.without:
            if name not in found:
                self.warnings.append(f"{self.source.what}: {name} is to be left out, but none of its packages "
                                     f"installs it for {self.target}; remove it from the list")
        if not left_out:
            return
        self.left_out = [f"{p.name}=={p.version}" for p in left_out]
        self.report(f"{self.source.what}: {', '.join(self.left_out)} left out: on Lambda the {self.target.runtime} "
                    "runtime's own copy applies, at whatever version the runtime has that day")
        if missing := sorted(p.name for p in left_out if p.name not in PROVIDED_BY_RUNTIME):
            self.warnings.append(f"{self.source.what}: {', '.join(missing)} left out, and the Lambda runtime does not "
                                 "provide it: code that imports it fails on Lambda unless another layer ships it")

    def _check_size(self, members: list[Any], packages: list[Package]) -> Shares:
        """Lambda's 250 MB, applied as the synth applies it: a build over it stops, near it warns; both say
        what would make it fit, measured on this build."""
        from layerkit import rules
        from layerkit.slim import is_test_file

        in_tests = [(name, size) for p in packages for name, size in p.sizes.items() if is_test_file(name)]
        shares = rules.Shares(
            bytecode=sum(m.size for m in members if m.name.endswith(".pyc")),
            tests=sum(size for _, size in in_tests), debug_symbols=sum(p.debug_bytes for p in packages),
            tests_bytecode=sum(size for name, size in in_tests if name.endswith(".pyc")),
        )
        for finding in rules.size_findings(self.source.what, sum(m.size for m in members), shares, self.spelling):
            if finding.severity is rules.Severity.ERROR:
                raise TooLargeError(finding.message)
            self.warnings.append(finding.message)
        return shares

    def _check(self, members: list[Any]) -> None:
        """The rules ``layerkit.check`` applies at synth, applied before anything is cached."""
        from layerkit import rules

        names = [m.name for m in members]
        if self.source.destination is Destination.LAYER:
            for finding in rules.layer_layout(self.source.name, names):
                if finding.severity is rules.Severity.ERROR:
                    raise LayerSourceError(finding.message)
        own = {self.prefix + p.relative_to(self.source.code_root).as_posix(): p for p in self.source.code_files}

        def head(name: str) -> bytes:
            with open(own[name], "rb") as file:
                return file.read(64)

        declared_in = self.source.declaration.kind if self.source.declaration else "requirements.txt"
        fix = f"delete it and list its package in {declared_in}, which the kit installs for {self.target}"
        if wrong := rules.native_code(self.source.what, list(own), head, self.target, fix):
            raise NativeCodeError(wrong[0].message)


def _bytecode_last(path: str) -> tuple[bool, str]:
    """Sorts source files before their ``.pyc``: a message names the file a user knows."""
    return "__pycache__/" in path, path


def _renamed(member: Any, name: str) -> Any:
    from dataclasses import replace

    return replace(member, name=name)
