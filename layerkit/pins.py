"""Pin a declaration for a target: the one wheel of each distribution that will be installed.

uv resolves (or, for a lock, only picks among the locked versions) for the target's Python, Lambda's Linux and
the function's machine, and writes the result as a PEP 751 lock: one wheel per distribution, with its sha256.
That sha256 keys the package cache. The checks here are the ones pip makes in hash-checking mode, and the
kit's promise: every declared requirement that applies to the target is installed, or the build stops.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from layerkit import cache, uv
from layerkit.errors import BuildError, DeclarationError, redact
from layerkit.installed import canonical_name
from layerkit.sources.declaration import Declaration, Requirement, local_requirement
from layerkit.targets import Target

Reporter = Callable[[str], None]


@dataclass(frozen=True)
class Pin:
    """One distribution to install: the wheel uv picked for the target."""

    name: str
    version: str
    wheel: str  # the wheel's file name
    sha256: str
    location: str  # a URL, or a local path

    @property
    def requirement(self) -> str:
        """A requirements line that installs exactly this wheel and nothing else."""
        location = self.location if "://" in self.location else Path(self.location).as_uri()
        return f"{self.name} @ {location} --hash=sha256:{self.sha256}"

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


def _build_local_packages(declaration: Declaration, what: str, cache_dir: Path, report: Reporter) -> Declaration:
    """Local path packages replaced by wheels built from them, cached by the content of their folder."""
    from layerkit.sources import IGNORED_DIRS, _walk

    built = []
    for requirement in declaration.requirements:
        if requirement.local is None or not requirement.local.is_dir():
            built.append(requirement)
            continue
        digest = hashlib.sha256(b"layerkit-local-package\0" + uv.version().encode())
        for path in _walk(requirement.local, skip_dirs=IGNORED_DIRS | {"build", "dist"}):
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


def pin(declaration: Declaration, target: Target, work: Path, *, what: str, cache_dir: Path,
        report: Reporter) -> list[Pin]:
    """The wheels to install for ``declaration`` on ``target``, sorted by name."""
    declaration = _build_local_packages(declaration, what, cache_dir, report)
    applicable = declaration.for_target(target)
    if not applicable:
        return []
    requirements = work / "requirements.in"
    requirements.write_text(declaration.requirements_text(), encoding="utf-8")
    constraints = None
    if declaration.constraints:
        constraints = work / "constraints.txt"
        constraints.write_text("\n".join(c.line() for c in declaration.constraints) + "\n", encoding="utf-8")
    lock = uv.pin(requirements, target, no_deps=declaration.locked, constraints=constraints,
                  cwd=declaration.path.parent, what=what)
    pins = [_pin_of(package) for package in lock.get("packages", [])]
    _check_declared_are_pinned(applicable, pins, declaration, target, what)
    if declaration.hashed:
        _check_hashes(declaration, pins, what)
    return sorted(pins, key=lambda p: p.name)


def _pin_of(package: dict[str, object]) -> Pin:
    wheels = package.get("wheels") or [package.get("archive")]
    wheel = wheels[0] if isinstance(wheels, list) and wheels else None
    if not isinstance(wheel, dict):
        raise BuildError(f"uv picked no wheel for {package.get('name')}: {redact(str(package))[:300]}")
    location = str(wheel.get("url") or wheel.get("path"))
    return Pin(canonical_name(str(package["name"])), str(package["version"]), location.rsplit("/", 1)[-1],
               str(wheel["hashes"]["sha256"]), redact(location))  # type: ignore[index]


def _check_declared_are_pinned(applicable: list[Requirement], pins: list[Pin], declaration: Declaration,
                               target: Target, what: str) -> None:
    pinned = {p.name: p for p in pins}
    for requirement in applicable:
        if requirement.name and requirement.name not in pinned:
            raise BuildError(
                f"{what}: {requirement.name} ({requirement.origin}) applies to {target} but the installer did not "
                f"pick it; check its name and markers in {declaration.kind}"
            )
        if requirement.name and (version := requirement.pinned_version) and pinned[requirement.name].version != version:
            raise BuildError(f"{what}: {requirement.origin} pins {requirement.name}=={version} but the installer "
                             f"picked {pinned[requirement.name].version}; check the constraints")


def _check_hashes(declaration: Declaration, pins: list[Pin], what: str) -> None:
    """pip's hash-checking mode: every installed distribution is declared with hashes, and its file matches."""
    declared = {r.name: r for r in declaration.requirements if r.name}
    for pin_ in pins:
        requirement = declared.get(pin_.name)
        if requirement is None or not requirement.hashes:
            raise DeclarationError(
                f"{what}: {declaration.kind} is in hash-checking mode, but {pin_.pin} (a dependency) has no --hash "
                "there; list every dependency with its hashes (uv pip compile --generate-hashes)"
            )
        if f"sha256:{pin_.sha256}" not in requirement.hashes:
            raise DeclarationError(
                f"{what}: the wheel for the target, {pin_.wheel}, matches none of the hashes of {pin_.name} in "
                f"{requirement.origin}; refresh the hashes or the lock for this platform"
            )
