"""What an install left in a layer's ``python/``: its distributions, the files each claims, and the overlaps.

uv installs wheels in parallel, so where two distributions ship the same path with different bytes, which
copy lands last changes from one build to the next (uv issue 21819), and so would the layer's zip. pip
installs one at a time, dependencies first, so the file of a distribution wins over the same file of one it
depends on. The build keeps that rule (:func:`overlaps` names the winner) and stops where no rule decides.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalize(name: str) -> str:
    """The PEP 503 form of a distribution name: ``Foo.Bar_baz`` and ``foo-bar-baz`` are the same project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def record_hash(path: Path) -> str:
    """A file's hash as a wheel's ``RECORD`` writes it: ``sha256=`` and unpadded urlsafe base64."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class Distribution:
    """One installed distribution, read from its ``.dist-info`` folder."""

    name: str
    version: str
    files: dict[str, str]  # path relative to the install folder -> its RECORD hash
    requires: frozenset[str]  # normalized names, whatever their markers: enough to order two claimants

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


def read_distributions(site_dir: Path) -> list[Distribution]:
    """Every distribution installed in ``site_dir``, by name."""
    found = []
    for info in sorted(site_dir.glob("*.dist-info")):
        headers = _headers(info / "METADATA")
        requires = {normalize(match.group(1)) for line in headers["requires-dist"] if (match := _NAME.match(line))}
        record = info / "RECORD"
        rows = csv.reader(record.read_text(encoding="utf-8").splitlines()) if record.exists() else []
        files = {row[0]: row[1] for row in rows if len(row) >= 2 and row[1]}
        name, version = headers["name"][0], headers["version"][0]
        found.append(Distribution(normalize(name), version, files, frozenset(requires)))
    return found


def _headers(metadata: Path) -> dict[str, list[str]]:
    """The fields of a METADATA file (RFC 822 style; the description after the first blank line is skipped)."""
    fields: dict[str, list[str]] = defaultdict(list)
    for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and not line[0].isspace():  # a continuation line only extends a field we do not read
            fields[key.strip().lower()].append(value.strip())
    return fields


@dataclass(frozen=True)
class Overlap:
    """A path that several distributions ship with different bytes, and whose copy the layer keeps."""

    path: str
    claimants: tuple[str, ...]
    winner: Distribution | None  # None: none of them depends on all the others, so no order decides

    def describe(self) -> str:
        names = " and ".join(self.claimants)
        return f"{names} both ship {self.path} with different content"


def overlaps(distributions: list[Distribution]) -> list[Overlap]:
    """Paths claimed with different hashes by more than one distribution, each with its pip-order winner."""
    by_name = {dist.name: dist for dist in distributions}
    claims: dict[str, list[Distribution]] = defaultdict(list)
    for dist in distributions:
        for path in dist.files:
            claims[path].append(dist)
    found = []
    for path, owners in sorted(claims.items()):
        if len({owner.files[path] for owner in owners}) == 1:
            continue  # the same bytes (a namespace package's __init__.py, say): any order gives the same layer
        names = {owner.name for owner in owners}
        winners = [dist for dist in owners if names - {dist.name} <= _depends_on(dist, by_name)]
        found.append(Overlap(path, tuple(sorted(names)), winners[0] if len(winners) == 1 else None))
    return found


def _depends_on(dist: Distribution, by_name: dict[str, Distribution]) -> set[str]:
    """Every installed distribution that ``dist`` needs, directly or through others."""
    seen: set[str] = set()
    todo = list(dist.requires)
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(by_name[name].requires)
    return seen


def losing_copies(found: list[Overlap], site_dir: Path) -> list[Overlap]:
    """The overlaps whose path in ``site_dir`` does not hold its winner's copy (or holds nothing)."""
    return [
        overlap for overlap in found
        if overlap.winner is not None and not (
            (site_dir / overlap.path).is_file()
            and record_hash(site_dir / overlap.path) == overlap.winner.files[overlap.path]
        )
    ]


def drop_installer_bookkeeping(site_dir: Path) -> None:
    """Remove uv's ``uv_cache.json`` from dist-infos, and its line from their ``RECORD``.

    uv writes it for a wheel from a local path (``--find-links``) with the time it cached the wheel, so two
    builds from empty uv caches would differ; nothing reads it at run time.
    """
    for info in site_dir.glob("*.dist-info"):
        bookkeeping = info / "uv_cache.json"
        if not bookkeeping.exists():
            continue
        bookkeeping.unlink()
        record = info / "RECORD"
        if record.exists():
            entry = f"{info.name}/{bookkeeping.name},"
            lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
            record.write_text("".join(line for line in lines if not line.startswith(entry)), encoding="utf-8")
