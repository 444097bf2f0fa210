"""Installed distributions: what an install left in a folder, and which copy wins where two ship one path.

pip installs one distribution at a time, dependencies first, so the file of a distribution wins over the
same file of one it depends on. The kit keeps that rule when it assembles packages (:func:`overlaps` names
the winner) and stops where no rule decides: the same layer every build, and the one the Docker build gets.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from layerkit.installed import record
from layerkit.installed.layer_paths import ON_SYS_PATH


def canonical_name(name: str) -> str:
    """The PEP 503 form of a distribution name: ``Foo.Bar_baz`` and ``foo-bar-baz`` are one project (what
    ``packaging.utils.canonicalize_name`` does, without its import on a cached build's path)."""
    return re.sub(r"[-_.]+", "-", name).lower()


#: What installers leave beside a distribution that nothing reads at run time and that would make two builds
#: differ: uv's record of when it cached a local wheel, the absolute path a local wheel was installed from,
#: whether it was asked for by name or came as a dependency (which differs from one layer to the next).
BOOKKEEPING = ("uv_cache.json", "direct_url.json", "REQUESTED")


@dataclass(frozen=True)
class Distribution:
    """One installed distribution: its name (canonical), version, and the names it requires."""

    name: str
    version: str
    requires: frozenset[str]
    dist_info: str = ""  # the folder it was read from, e.g. six-1.17.0.dist-info
    requires_dist: tuple[str, ...] = ()  # as written, markers included
    requires_python: str = ""  # its Requires-Python, e.g. ">=3.8"

    @property
    def pin(self) -> str:
        return f"{self.name}=={self.version}"


#: The name a ``Requires-Dist`` line starts with (PEP 508): all the installed-set bookkeeping needs of it.
_REQUIRED_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def read_distributions(site_dir: Path) -> list[Distribution]:
    """Every distribution installed in ``site_dir`` (its ``*.dist-info`` folders), by name."""
    from importlib.metadata import PathDistribution  # lazy: 10 ms, and a cache hit reads no metadata

    found = []
    for info in sorted(site_dir.glob("*.dist-info")):
        metadata = PathDistribution(info).metadata  # parsed once: each access of .metadata parses it again
        name, version = metadata["Name"], metadata["Version"]
        if not name or not version:
            continue
        requires_dist = tuple(metadata.get_all("Requires-Dist") or ())
        requires = {canonical_name(match.group(1)) for line in requires_dist if (match := _REQUIRED_NAME.match(line))}
        found.append(Distribution(canonical_name(name), version, frozenset(requires), info.name, requires_dist,
                                  metadata["Requires-Python"] or ""))
    return sorted(found, key=lambda d: d.name)


#: Where installers put console scripts: their shebang is the installing machine's Python, useless on Lambda.
SCRIPTS = "bin"


def drop_bookkeeping(site_dir: Path) -> None:
    """Remove what an installer leaves that is not the distribution: scripts whose shebang is this machine's
    Python (``bin/``), uv's ``.lock``, and :data:`BOOKKEEPING` files, with their lines in ``RECORD`` (a script's
    line records the hash of that machine's shebang: the Docker build and the local build would differ there).

    Raises :class:`~layerkit.installed.record.UnsafeRecordError` for a ``RECORD`` that names a file outside
    ``site_dir``."""
    import shutil  # lazy: 7 ms, and only a build that installs removes anything

    shutil.rmtree(site_dir / SCRIPTS, ignore_errors=True)
    (site_dir / ".lock").unlink(missing_ok=True)
    for info in site_dir.glob("*.dist-info"):
        dropped = [name for name in BOOKKEEPING if (info / name).exists()]
        for name in dropped:
            (info / name).unlink()
        if not (info / "RECORD").exists():
            continue
        prefixes = tuple(f"{info.name}/{name}" for name in dropped)
        rows = record.rows(site_dir, info.name)
        kept = [row for row in rows if row.path not in prefixes and not row.path.startswith(f"{SCRIPTS}/")]
        if len(kept) != len(rows):
            # Replaced, never edited in place: an installed file may be a hard link into uv's cache.
            record.replace(site_dir, info.name, kept)


@dataclass(frozen=True)
class Overlap:
    """A path that several distributions ship with different bytes, and whose copy is kept."""

    path: str
    claimants: tuple[str, ...]
    winner: str | None  # None: none of them depends on all the others, so no install order decides

    def describe(self) -> str:
        return f"{' and '.join(self.claimants)} both ship {self.path} with different content"


def overlaps(files: Mapping[str, Mapping[str, int]], requires: Mapping[str, frozenset[str]]) -> list[Overlap]:
    """Paths that more than one distribution ships with different content (``files``: name -> path ->
    checksum), each with the distribution whose copy pip's order would keep."""
    claims: dict[str, list[str]] = defaultdict(list)
    for name, paths in files.items():
        for path in paths:
            claims[path].append(name)
    found = []
    for path, owners in sorted(claims.items()):
        if len(owners) < 2 or len({files[owner][path] for owner in owners}) == 1:
            continue  # the same bytes (a namespace package's __init__.py, say): any order gives the same result
        names = set(owners)
        winners = [name for name in sorted(names) if names - {name} <= _depends_on(name, requires)]
        found.append(Overlap(path, tuple(sorted(names)), winners[0] if len(winners) == 1 else None))
    return found


def _depends_on(name: str, requires: Mapping[str, frozenset[str]]) -> set[str]:
    """Every distribution that ``name`` needs, directly or through others."""
    seen: set[str] = set()
    todo = list(requires.get(name, ()))
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(requires.get(current, ()))
    return seen


_DIST_INFO = re.compile(rf"^(?P<prefix>{ON_SYS_PATH.pattern.removeprefix('^')})?(?P<name>[^/]+?)-(?P<version>[^-/]+)"
                        r"\.dist-info/METADATA$")


def distributions_in(paths: Iterable[str], *, in_layer: bool) -> dict[str, str]:
    """Distributions (canonical name -> version) an asset ships, from the paths of its ``*.dist-info``: a
    layer's in ``python/`` (or its site-packages), a function's at the root."""
    found = {}
    for path in paths:
        match = _DIST_INFO.match(path)
        if match and bool(match.group("prefix")) == in_layer:
            found[canonical_name(match.group("name"))] = match.group("version")
    return found
