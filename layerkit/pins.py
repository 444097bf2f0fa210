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

import base64
import csv
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from layerkit import cache, uv
from layerkit.errors import BuildError, DeclarationError
from layerkit.installed import Distribution, drop_bookkeeping, overlaps, read_distributions
from layerkit.sources.declaration import Declaration, Requirement, local_requirement
from layerkit.targets import Target

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
    """Local path packages replaced by wheels built from them, cached by the content of their folder."""
    from layerkit.sources import package_files

    built = []
    for requirement in declaration.requirements:
        if requirement.local is None or not requirement.local.is_dir():
            built.append(requirement)
            continue
        digest = hashlib.sha256(b"layerkit-local-package\0" + uv.version().encode())
        for path in package_files(requirement.local):
            digest.update(path.relative_to(requirement.local).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        entry = cache_dir / "local-wheels" / digest.hexdigest()

        def build(tree: Path, package: Path = requirement.local) -> dict[str, str]:
            report(f"{what}: building the local package {package.name} into a wheel")
            return {"wheel": uv.build_wheel(package, tree, what).name}

        meta, _ = cache.materialize(entry, build)
        wheel = local_requirement(entry / meta["wheel"], requirement.origin, requirement.marker)
        if requirement.name and wheel.name != requirement.name:
            raise DeclarationError(f"{requirement.origin}: the package in {requirement.local} is named "
                                   f"{wheel.name}, not {requirement.name}; fix the name")
        built.append(wheel)
    return replace(declaration, requirements=tuple(built))


def _record_files(site: Path, dist: Distribution) -> dict[str, str]:
    rows = csv.reader((site / dist.dist_info / "RECORD").read_text(encoding="utf-8").splitlines())
    return {row[0]: row[1] for row in rows if row}


def _identity(files: dict[str, str]) -> str:
    return hashlib.sha256("\n".join(f"{path},{digest}" for path, digest in sorted(files.items())).encode()).hexdigest()


def record_hash(path: Path) -> str:
    """A file's hash as a wheel's ``RECORD`` writes it: ``sha256=`` and unpadded urlsafe base64."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def pin(declaration: Declaration, target: Target, work: Path, *, what: str, cache_dir: Path,
        report: Reporter) -> list[Pin]:
    """Install ``declaration`` for ``target`` under ``work`` and return what it installed, sorted by name."""
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
    uv.install(requirements, site, target, cwd=declaration.path.parent, what=what, no_deps=declaration.locked,
               hashes=declaration.hashed, constraints=constraints,
               offline_first=[(r.name, r.pinned_version) for r in applicable if r.name]
               if all(r.pinned for r in declaration.requirements) else None)
    drop_bookkeeping(site)
    pins = [Pin(dist, site, files, _identity(files))
            for dist in read_distributions(site) for files in [_record_files(site, dist)]]
    _check_declared_are_installed(applicable, pins, declaration, target, what)
    return sorted(_separate_overlaps(pins, declaration, target, work, what), key=lambda p: p.name)


def _separate_overlaps(pins: list[Pin], declaration: Declaration, target: Target, work: Path,
                       what: str) -> list[Pin]:
    """Where two distributions ship one path with different content, only one copy is in the shared folder:
    each distribution whose copy was written over is installed again, alone, so that its files are its own."""
    by_name = {p.name: p for p in pins}
    found = overlaps({p.name: p.files for p in pins}, {p.name: p.distribution.requires for p in pins})
    lost = {name for overlap in found for name in overlap.claimants
            if record_hash(by_name[name].site / overlap.path) != by_name[name].files[overlap.path]}
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
        drop_bookkeeping(alone)
        separated.append(Pin(pin_.distribution, alone, pin_.files, pin_.identity))
    return separated


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
