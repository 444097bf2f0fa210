"""Pin a declaration for a target: the distributions it installs there, each with its files.

One uv call resolves (or, for a lock, takes the locked set with ``--no-deps``) and installs for the target's
Python, Lambda's Linux and the function's machine, in parallel, from uv's own cache (a hard link per file, so
nothing here edits an installed file in place). What it installed, read back from each ``.dist-info``, is the pin:
the name, version and files of every distribution, and an identity (a sha256 of its ``RECORD``, every file's
hash) that keys the package cache: another wheel of the same name and version has another identity.

The checks are the ones pip makes in hash-checking mode (uv's ``--require-hashes``), and the kit's promise:
every declared requirement that applies to the target is installed, or the build stops.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from layerkit.core import cache, uv
from layerkit.core.errors import BuildError, DeclarationError, LayerkitError, UnsafeContentError, redact
from layerkit.core.index_settings import IndexSettings
from layerkit.core.targets import Target
from layerkit.install import requires_python
from layerkit.installed import record
from layerkit.installed import slim as slimming
from layerkit.installed.distributions import Distribution, drop_bookkeeping, overlaps, read_distributions
from layerkit.installed.slim import Slim
from layerkit.sources import copy_package, package_files
from layerkit.sources.declaration import Declaration, Requirement, local_requirement

Reporter = Callable[[str], None]


@dataclass(frozen=True)
class Pin:
    """One installed distribution: where its files are, and what identifies them."""

    distribution: Distribution
    site: Path  # the folder its files are installed in
    files: dict[str, str]  # path relative to ``site`` -> RECORD hash ("sha256=...", or "" for RECORD itself)
    identity: str  # sha256 of its RECORD: the same files, the same identity

    @property
    def name(self) -> str:
        return self.distribution.name

    @property
    def version(self) -> str:
        return self.distribution.version

    @property
    def pin(self) -> str:
        return self.distribution.pin


def _build_local_packages(declaration: Declaration, what: str, cache_dir: Path, report: Reporter) -> Declaration:
    """Local path packages replaced by wheels built from them, cached by the content of their folder.

    A package is built from a copy of its files (those :func:`~layerkit.sources.package_files` reads), never
    in its folder: a build backend writes there (setuptools' ``build/``), and the folder may be the function's
    own, whose next build would ship what the first wrote."""
    built = []
    for requirement in declaration.requirements:
        if requirement.local is None or not requirement.local.is_dir():
            built.append(requirement)
            continue
        files = package_files(requirement.local, what)
        digest = hashlib.sha256(b"layerkit-local-package\0" + uv.version().encode())
        for path in files:
            digest.update(path.relative_to(requirement.local).as_posix().encode() + b"\0")
            with open(path, "rb") as file:
                digest.update(hashlib.file_digest(file, "sha256").digest())
        entry = cache_dir / "local-wheels" / digest.hexdigest()

        def build(tree: Path, package: Path = requirement.local, files: list[Path] = files) -> dict[str, str]:
            report(f"{what}: building the local package {package.name} into a wheel")
            with cache.scratch(cache_dir / "local-wheels", "source") as work:
                copy = work / package.name
                copy_package(package, files, copy)
                return {"wheel": uv.build_wheel(copy, tree, what, shown=package).name}

        meta, _ = cache.materialize(entry, build, required=("wheel",))
        wheel = local_requirement(entry / meta["wheel"], requirement.origin, requirement.marker)
        if requirement.name and wheel.name != requirement.name:
            raise DeclarationError(f"{requirement.origin}: the package in {requirement.local} is named "
                                   f"{wheel.name}, not {requirement.name}; fix the name")
        built.append(wheel)
    return replace(declaration, requirements=tuple(built))


def resolved(declaration: Declaration, target: Target, *, what: str, cache_dir: Path,
             report: Reporter) -> dict[str, str]:
    """The distributions (canonical name -> version) that ``declaration`` installs for ``target``, without
    installing them: a lock's own pins, else uv's resolution, kept in the cache by everything that decides it (the
    declaration as the installer reads it, the target, uv's version and the index settings)."""
    applicable = declaration.for_target(target)
    if declaration.locked:
        return {r.name: r.pinned_version for r in applicable if r.name and r.pinned_version}
    if not applicable:
        return {}
    declaration = _build_local_packages(declaration, what, cache_dir, report)
    text = declaration.requirements_text()
    constraints = "\n".join(c.line() for c in declaration.constraints)
    settings = IndexSettings.of(uv.build_environment())
    indexes = [redact(settings.index_url or ""), redact(settings.extra_index_url or "")]
    key = hashlib.sha256("\0".join(["layerkit-resolution", uv.version(), target.python_version, target.uv_platform,
                                     redact(text), redact(constraints), *indexes]).encode()).hexdigest()
    entry = cache_dir / "resolutions" / key

    def fill(tree: Path) -> dict[str, Any]:
        (tree / "requirements.in").write_text(text, encoding="utf-8")
        constraint_file = None
        if constraints:
            constraint_file = tree / "constraints.txt"
            constraint_file.write_text(constraints + "\n", encoding="utf-8")
        pins = uv.compile_pins(tree / "requirements.in", target, cwd=declaration.path.parent, what=what,
                               constraints=constraint_file)
        return {"pins": pins}

    meta, _ = cache.materialize(entry, fill, required=("pins",))
    return dict(meta["pins"])


def _identity(files: dict[str, str]) -> str:
    return hashlib.sha256("\n".join(f"{path},{digest}" for path, digest in sorted(files.items())).encode()).hexdigest()


def _settle(site: Path, what: str, slim: Slim, target: Target) -> dict[str, dict[str, str]]:
    """What the installer left in ``site``, made what may ship: no bookkeeping, every ``RECORD`` row inside the
    folder (a wheel that names a file of this machine stops the build), slimmed as asked.

    Returns each distribution's files (``RECORD`` path to digest) by its ``*.dist-info`` name, as they ship."""
    try:
        drop_bookkeeping(site)
        if slim.changes_files:
            slimming.apply(site, slim)  # checks each RECORD (record.rows) before it removes a file it names
        # Read once, as they ship; reading is checking: a row outside the folder raises here.
        return {info.name: {row.path: row.digest for row in record.rows(site, info.name)}
                for info in sorted(site.glob("*.dist-info")) if (info / "RECORD").is_file()}
    except record.UnsafeRecordError as error:
        carrier = next((other.name for other in sorted(site.glob("*.dist-info")) if other.name != error.dist_info
                        and (other / "RECORD").is_file() and f"{error.dist_info}/RECORD" in
                        (other / "RECORD").read_text(encoding="utf-8", errors="replace")), None)
        by = f" (installed as a data file of {carrier.removesuffix('.dist-info')})" if carrier else ""
        raise UnsafeContentError(
            f"{what}: {error.dist_info}{by} has a RECORD that names {error.row!r}, {error.why}: such a wheel is "
            f"broken or hostile, and nothing of it is built for {target}; remove the requirement that brings it"
        ) from None


def _at_its_line(error: LayerkitError, requirements: list[Requirement], what: str) -> LayerkitError:
    """``error`` naming the line of the declaration that asks for the distribution it is about (the installer
    names the distribution, the user knows the line)."""
    message = str(error)
    for requirement in requirements:
        if requirement.name and re.search(rf"(?<![\w-]){re.escape(requirement.name)}(?![\w-])", message,
                                          re.IGNORECASE):
            where = f"{requirement.origin} ({requirement.text.split(';')[0].strip()})"
            return type(error)(f"{what}: {where}: {message.removeprefix(f'{what}: ')}")
    return error


def pin(declaration: Declaration, target: Target, work: Path, *, what: str, cache_dir: Path,
        report: Reporter, slim: Slim | None = None) -> list[Pin]:
    """Install ``declaration`` for ``target`` under ``work`` and return what it installed, sorted by name,
    slimmed as ``slim`` says (:mod:`layerkit.installed.slim`)."""
    slim = slim or Slim()
    declaration = _build_local_packages(declaration, what, cache_dir, report)
    applicable = declaration.for_target(target)
    if not applicable:
        return []
    work.mkdir(parents=True, exist_ok=True)
    requirements = work / "requirements.in"
    requirements.write_text(declaration.requirements_text(), encoding="utf-8")
    constraints = None
    if declaration.constraints:
        constraints = work / "constraints.txt"
        constraints.write_text("\n".join(c.line() for c in declaration.constraints) + "\n", encoding="utf-8")
    site = work / "site"
    try:
        uv.install(requirements, site, target, cwd=declaration.path.parent, what=what, no_deps=declaration.locked,
                   hashes=declaration.hashed, constraints=constraints,
                   offline_first=[(r.name, r.pinned_version) for r in applicable if r.name]
                   if all(r.pinned for r in declaration.requirements) else None)
    except LayerkitError as error:
        raise _at_its_line(error, applicable, what) from None
    settled = _settle(site, what, slim, target)
    pins = [Pin(dist, site, files, _identity(files))
            for dist in read_distributions(site) for files in [settled[dist.dist_info]]]
    _check_declared_are_installed(applicable, pins, declaration, target, what)
    _check_requires_python(pins, declaration, target, what)
    return sorted(_separate_overlaps(pins, declaration, target, work, what, slim), key=lambda p: p.name)


def _separate_overlaps(pins: list[Pin], declaration: Declaration, target: Target, work: Path,
                       what: str, slim: Slim) -> list[Pin]:
    """Where two distributions ship one path with different content, only one copy is in the shared folder:
    each distribution whose copy was written over is installed again, alone, so that its files are its own."""
    by_name = {p.name: p for p in pins}
    found = overlaps({p.name: p.files for p in pins}, {p.name: p.distribution.requires for p in pins})
    lost = {name for overlap in found for name in overlap.claimants
            if record.digest_of(by_name[name].site / overlap.path) != by_name[name].files[overlap.path]}
    separated = []
    for pin_ in pins:
        if pin_.name not in lost:
            separated.append(pin_)
            continue
        alone = work / f"alone-{pin_.name}"
        line = work / f"alone-{pin_.name}.txt"
        requirement = next((r for r in declaration.requirements if r.name == pin_.name), None)
        hashes = requirement.hashes if requirement else ()
        line.write_text("\n".join([*declaration.options, " ".join([pin_.pin, *(f"--hash={h}" for h in hashes)])])
                        + "\n", encoding="utf-8")
        uv.install(line, alone, target, cwd=declaration.path.parent, what=what, no_deps=True, hashes=bool(hashes))
        _settle(alone, what, slim, target)
        separated.append(Pin(pin_.distribution, alone, pin_.files, pin_.identity))
    return separated


def _check_requires_python(pins: list[Pin], declaration: Declaration, target: Target, what: str) -> None:
    """A release whose ``Requires-Python`` excludes the runtime is refused (uv ignores the upper bound: for 3.12
    it takes ``dataclasses`` 0.8, ``<3.7``, which shadows the standard library's module)."""
    for pin_ in pins:
        if requires_python.accepts(pin_.distribution.requires_python, target):
            continue
        name = pin_.name
        newest = requires_python.newest_accepted(name, requires_python.index_url(declaration.options), target)
        fix = (f"pin {name}=={newest}, the newest release that supports it" if newest else
               f"pin a release of {name} whose Requires-Python admits {target.python_version} (see its release "
               "history)")
        raise BuildError(
            f"{what}: {pin_.pin} requires Python {pin_.distribution.requires_python}, and {target.runtime} is "
            f"Python {target.python_version}: {fix}, or drop it if the standard library has it"
        )


def _check_declared_are_installed(applicable: list[Requirement], pins: list[Pin], declaration: Declaration,
                                  target: Target, what: str) -> None:
    installed = {p.name: p for p in pins}
    for requirement in applicable:
        if requirement.name and requirement.name not in installed:
            raise BuildError(
                f"{what}: {requirement.name} ({requirement.origin}) applies to {target} but the installer did not "
                f"install it; check its name and markers in {declaration.kind}"
            )
        version = requirement.pinned_version
        if requirement.name and version and installed[requirement.name].version != version:
            raise BuildError(f"{what}: {requirement.origin} pins {requirement.name}=={version} but the installer "
                             f"installed {installed[requirement.name].version}; check the constraints")
