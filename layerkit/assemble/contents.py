"""What one build's zip holds, made on a cache miss: the declaration's packages (from the package cache where
it has them, installed with uv where not), the folder's own code compiled, both checked against Lambda's rules
and merged in pip's order, then written as one deterministic zip (:mod:`layerkit.core.archive`).

Kept apart from :mod:`.local_build`, which decides whether there is a miss at all: a cache hit imports none of
the installing.
"""

from __future__ import annotations

import contextvars
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet

from layerkit.core import archive, cache, progress, uv
from layerkit.core.cache_keys import builder_version
from layerkit.core.errors import BuildError, LayerSourceError, NativeCodeError, TooLargeError
from layerkit.core.targets import Destination, Target
from layerkit.install import bytecode as pyc
from layerkit.install import package_cache, pins
from layerkit.install.package_cache import Package
from layerkit.install.pins import Pin
from layerkit.installed.distributions import overlaps
from layerkit.installed.slim import PROVIDED_BY_RUNTIME, Slim, is_test_file
from layerkit.rules import content as rules
from layerkit.rules.findings import Severity
from layerkit.rules.size import Shares, size_findings
from layerkit.sources import SourceFolder
from layerkit.sources.declaration import Declaration

Reporter = Callable[[str], None]

#: The uv runs a set installed without resolving is split into. Two: on two cores, one run's packages are
#: compressed while the other still downloads; more runs each pay uv's start and compete for the cores (fourteen
#: runs of one package took twice as long as one run of fourteen).
INSTALL_GROUPS = 2


class Contents:
    """One cache miss: pin, install, check and zip. Nothing of it is visible until the entry is renamed in."""

    def __init__(self, source: SourceFolder, target: Target, python: Path | None, cache_dir: Path,
                 report: Reporter, workers: int | None, provided: dict[str, str], slim: Slim) -> None:
        self.source, self.target, self.python, self.cache_dir = source, target, python, cache_dir
        self.report, self.workers, self.provided, self.slim = report, workers, provided, slim
        self.prefix = source.destination.zip_prefix
        self.warnings: list[str] = list(source.warnings)
        self.left_out: list[str] = []
        self.made: set[Path] = set()  # the package and bytecode entries this build made

    def write(self, destination: Path) -> dict[str, Any]:
        with cache.scratch(self.cache_dir / "builds", "work") as work:
            packages, provided_by_layers = self._packages(work)
            doing = "compiling and compressing" if self.python is not None else "compressing"
            with progress.step(f"{self.source.what}: {doing} its own code"):
                own, failures = self._own_code(work)
            self._refuse_broken_handler_modules(failures)
            members = self._merge(own, packages)
            self._check(members)
            shares = self._check_size(members, packages)
            with progress.step(f"{self.source.what}: writing the zip ({len(members)} files)"):
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
            "package_cache": package_counts(packages),
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
        with progress.step(f"{self.source.what}: installing {declaration.kind} for {self.target} with uv "
                           f"{uv.version()}"):
            found = self._recalled(declaration, work)
            if found is None:
                found = self._installed(declaration, declaration, work, groups=INSTALL_GROUPS)
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
        counts = package_counts(shipped)
        compiled = f"{counts['compiled']} compiled from its cached files, " if counts["compiled"] else ""
        self.report(f"{self.source.what}: {len(shipped)} package(s) for {self.target.runtime} "
                    f"({self.target.python_tag}, {self.target.platform_tag}) from {declaration.kind}: "
                    f"{counts['reused']} from the package cache, {compiled}{counts['installed']} installed with uv "
                    f"{uv.version()}, {'compiled and ' if self.python is not None else ''}compressed in "
                    f"{time.perf_counter() - started:.1f} s")
        return shipped, [f"{p.name}=={p.version}" for p in provided]

    def _recalled(self, declaration: Declaration, work: Path) -> list[Package] | None:
        """An exactly pinned declaration's packages: from the package cache where it has them, the others
        installed as they are pinned, without resolving (a lock, or a compiled requirements file, already is a
        resolution). None when the declaration is not one, or when its pins leave out a dependency, or hold one
        at a version another does not accept: it is resolved then, as written."""
        recalled = package_cache.recall(declaration, self.target, self.source.destination,
                                        compiled=self.python is not None, cache_dir=self.cache_dir, slim=self.slim)
        if recalled is None:
            return None
        found, missing = recalled
        if missing:
            wanted = replace(declaration, requirements=tuple(missing), locked=True, require_hashes=declaration.hashed)
            # Split only to overlap downloads: with every wheel in uv's cache, a second uv run is only its start.
            downloads = not uv.cache_holds([(r.name, r.pinned_version) for r in missing], declaration.path.parent)
            found = found + self._installed(wanted, declaration, work, groups=INSTALL_GROUPS if downloads else 1)
        return sorted(found, key=lambda p: p.name) if package_cache.complete(found, self.target) else None

    def _installed(self, wanted: Declaration, declaration: Declaration, work: Path, groups: int = 1) -> list[Package]:
        """Install ``wanted`` (the declaration, or some of its pins) and make its packages. A set installed
        without resolving (a lock, exact pins) is split into ``groups`` uv runs at once, and the packages of the
        first to finish are compressed and compiled while the others still download."""
        parts = _split(wanted, groups) if wanted.locked else [wanted]
        first = len(list(work.iterdir()))
        folders = [work / f"install-{first + n}" for n in range(len(parts))]

        def install(part: Declaration, folder: Path) -> list[Pin]:
            return pins.pin(part, self.target, folder, what=self.source.what, cache_dir=self.cache_dir,
                            report=self.report, slim=self.slim)

        if len(parts) == 1:
            installed = install(parts[0], folders[0])
            prepared = self._prepare(installed)
        else:
            installed, prepared = [], []
            with ThreadPoolExecutor(len(parts), thread_name_prefix="layerkit-install") as pool:
                # Each run in a copy of this context: the construct's own environment for uv (its index) is a
                # context variable (core.uv.environment_overlay), which a pool's thread would not see.
                futures = [pool.submit(contextvars.copy_context().run, install, part, folder)
                           for part, folder in zip(parts, folders, strict=True)]
                for future in as_completed(futures):
                    if future.exception() is None:
                        installed += future.result()
                        prepared += self._prepare(future.result())
            for future in futures:
                future.result()  # a failed run is said in the order of the parts, whichever ended first
        package_cache.remember(installed, prepared, declaration, self.target, cache_dir=self.cache_dir,
                               slim=self.slim)
        return sorted(prepared, key=lambda p: p.name)

    def _prepare(self, installed: list[Pin]) -> list[Package]:
        """The packages of ``installed``; one this build made earlier (before it fell back to resolving) counts as
        made by it, not as taken from the cache."""
        prepared = []
        for package in package_cache.prepare(installed, self.target, self.source.destination, python=self.python,
                                             cache_dir=self.cache_dir, what=self.source.what, workers=self.workers):
            files_made = not package.files_reused or package.entry in self.made
            pyc_made = package.bytecode is not None and (not package.reused or package.bytecode in self.made)
            self.made |= {package.entry} if files_made else set()
            self.made |= {package.bytecode} if pyc_made and package.bytecode is not None else set()
            prepared.append(replace(package, reused=not (files_made or pyc_made), files_reused=not files_made))
        return prepared

    def _check_agreement(self, pinned: dict[str, str]) -> None:
        """A second declaration in the folder must ask for nothing the first does not install."""
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

    def _refuse_broken_handler_modules(self, failures: list[str]) -> None:
        """A module at the top of a function's folder that does not compile: Lambda imports the handler module at
        every cold start, so the function could never answer (a file deeper may be one nothing imports: a
        warning)."""
        if self.source.destination is not Destination.FUNCTION:
            return
        for failure in failures:
            path, _, reason = failure.partition(": ")
            if "/" not in path:
                raise LayerSourceError(
                    f"{self.source.what}: {path} does not compile for Python {self.target.python_version} "
                    f"({reason}); a module at the top of a function's folder is the handler's, imported at every "
                    "cold start: fix it")

    def _own_code(self, work: Path) -> tuple[list[archive.Member], list[str]]:
        """The folder's own files, copied (never compiled in place), compiled, then compressed."""
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
            found = pyc.compile_sources(self.python, pyc.sources_of(code, self.source.destination.value),
                                             self.workers)
            failures = [f"{f.path.relative_to(code).as_posix()}: {f.reason}" for f in found]
        all_files = sorted(p for p in code.rglob("*") if p.is_file()) if code.exists() else []
        names = [self.prefix + p.relative_to(code).as_posix() for p in all_files]
        return archive.compress_files(zip(names, all_files, strict=True), self.workers, work / "spill",
                                      what=self.source.what), failures

    def _merge(self, own: list[archive.Member], packages: list[archive.Member]) -> list[archive.Member]:
        """Every member once: where two packages ship one path, pip's order decides; a package never
        silently replaces the folder's own file."""
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

    def _check_size(self, members: list[archive.Member], packages: list[Package]) -> Shares:
        """Lambda's 250 MB, applied as the synth applies it: a build over it stops, near it warns; both say
        what would make it fit, measured on this build."""
        in_tests = [(name, size) for p in packages for name, size in p.sizes.items() if is_test_file(name)]
        shares = Shares(
            bytecode=sum(m.size for m in members if m.name.endswith(".pyc")),
            tests=sum(size for _, size in in_tests), debug_symbols=sum(p.debug_bytes for p in packages),
            tests_bytecode=sum(size for name, size in in_tests if name.endswith(".pyc")),
        )
        for finding in size_findings(self.source.what, sum(m.size for m in members), shares):
            if finding.severity is Severity.ERROR:
                raise TooLargeError(finding.message)
            self.warnings.append(finding.message)
        return shares

    def _check(self, members: list[archive.Member]) -> None:
        """The rules ``layerkit.check`` applies at synth, applied before anything is cached."""
        names = [m.name for m in members]
        if self.source.destination is Destination.LAYER:
            for finding in rules.layer_layout(self.source.name, names):
                if finding.severity is Severity.ERROR:
                    raise LayerSourceError(finding.message)
        own = {self.prefix + p.relative_to(self.source.code_root).as_posix(): p for p in self.source.code_files}

        def head(name: str) -> bytes:
            with open(own[name], "rb") as file:
                return file.read(64)

        declared_in = self.source.declaration.kind if self.source.declaration else "requirements.txt"
        fix = f"delete it and list its package in {declared_in}, which the kit installs for {self.target}"
        if wrong := rules.native_code(self.source.what, list(own), head, self.target, fix):
            raise NativeCodeError(wrong[0].message)


def package_counts(packages: list[Package]) -> dict[str, int]:
    """How much of a build's packages the package cache gave: whole (``reused``), their files only, the ``.pyc``
    compiled now (``compiled``), or nothing (``installed``: compressed now)."""
    return {"reused": sum(p.reused for p in packages),
            "compiled": sum(p.files_reused and not p.reused for p in packages),
            "installed": sum(not p.files_reused for p in packages)}


def _split(declaration: Declaration, groups: int) -> list[Declaration]:
    """``declaration``'s requirements dealt into at most ``groups`` declarations, in their order (the same split
    every build: which run installs a package never changes what it is)."""
    requirements = declaration.requirements
    return [replace(declaration, requirements=requirements[n::groups]) for n in range(min(groups, len(requirements)))]


def _bytecode_last(path: str) -> tuple[bool, str]:
    """Sorts source files before their ``.pyc``: a message names the file a user knows."""
    return "__pycache__/" in path, path


def _renamed(member: archive.Member, name: str) -> archive.Member:
    return replace(member, name=name)
