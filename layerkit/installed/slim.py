"""Making a layer or function fit Lambda's 250 MB: what may be left out of its installed packages, opt-in.

Lambda counts a function's code and all its layers, unzipped, against 250 MB. Three things in installed packages
are often large and never needed at run time, and the kit leaves each out when asked (nothing by default):

- ``tests``: the packages' own test suites (a ``tests/`` or ``test/`` folder inside a package, as
  serverless-python-requirements' ``slim`` drops them): 91 MB of the bench's numpy + pandas + scipy layer;
- ``debug_symbols``: the debug sections and static symbol tables of their ``.so`` files (:mod:`layerkit.installed.elf`,
  for either architecture, whatever machine builds);
- ``without``: whole distributions, e.g. ``boto3`` and ``botocore``, which every Lambda Python runtime provides:
  the runtime's version then applies, whichever that is on the day.

The user's own files are never touched. A ``RECORD`` keeps listing exactly the files that ship (dropped rows go,
a stripped file's hash and size are rewritten).

Only the standard library: the Docker builder runs this module inside its container
(``python -m layerkit.installed.slim``), so that both builders ship the same files.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from layerkit.installed import elf, record
from layerkit.installed.distributions import canonical_name
from layerkit.installed.layer_paths import is_compiled

#: Folder names that hold a package's own test suite.
TEST_FOLDERS = frozenset({"tests", "test"})
#: What the Lambda Python runtimes provide beside the standard library (the AWS SDK and its dependencies).
PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil",
                                 "six"})


@dataclass(frozen=True)
class Slim:
    """What to leave out of the installed packages (see the module). Default: nothing.

    Example::

        SharedPythonLayer(self, "Science", entry="layers/science", runtime=lambda_.Runtime.PYTHON_3_12,
                          slim=Slim(tests=True, debug_symbols=True, without=("boto3", "botocore")))
    """

    tests: bool = False
    debug_symbols: bool = False
    without: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "without", tuple(sorted({canonical_name(n) for n in self.without})))

    @property
    def changes_files(self) -> bool:
        """Whether it drops or rewrites files of the packages it keeps."""
        return self.tests or self.debug_symbols

    def options(self) -> tuple[str, ...]:
        """What it changes, as parts of a fingerprint or a cache key (none for the default)."""
        return tuple([*(["slim tests"] if self.tests else []), *(["slim debug-symbols"] if self.debug_symbols else []),
                      *(f"without {name}" for name in self.without)])

    def file_options(self) -> tuple[str, ...]:
        """The parts of :meth:`options` that change the files of a package it keeps (a package cache key)."""
        return tuple(option for option in self.options() if option.startswith("slim "))

    def arguments(self) -> list[str]:
        """The command line of :func:`main` that applies it."""
        return [*(["--tests"] if self.tests else []), *(["--debug-symbols"] if self.debug_symbols else [])]


def is_test_file(path: str) -> bool:
    """Whether ``path`` (relative to where packages are installed) sits in a package's test folder: a ``tests/``
    or ``test/`` folder below a top-level package, never a top-level one (that is a package of its own)."""
    parts = path.split("/")
    return not parts[0].endswith((".dist-info", ".data")) and any(part in TEST_FOLDERS for part in parts[1:-1])


@dataclass
class Slimmed:
    """What :func:`apply` left out, in bytes."""

    tests: int = 0
    debug_symbols: int = 0
    removed: dict[str, int] = field(default_factory=dict)  # distribution -> bytes


def apply(site: Path, slim: Slim, remove: Iterable[str] = ()) -> Slimmed:
    """Slim the distributions installed in ``site`` in place (files replaced, never edited: they may be hard
    links into an installer's cache), and remove the distributions named in ``remove`` entirely."""
    removing = {canonical_name(name) for name in remove}
    done = Slimmed()
    emptied: set[Path] = set()
    for info in sorted(site.glob("*.dist-info")):
        if not (info / "RECORD").is_file():
            continue
        rows = record.rows(site, info.name)
        name = canonical_name(info.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        if name in removing:
            done.removed[name] = _remove(site, [r.path for r in rows], emptied)
            shutil.rmtree(info, ignore_errors=True)
            continue
        kept, changed = [], False
        for row in rows:
            path = site / row.path
            if slim.tests and is_test_file(row.path):
                done.tests += _remove(site, [row.path], emptied)
                changed = True
                continue
            if slim.debug_symbols and is_compiled(row.path) and path.is_file():
                stripped = path.with_name(f".{path.name}.layerkit")
                saved = elf.strip_file(path, stripped)
                if saved:
                    stripped.chmod(path.stat().st_mode & 0o777)
                    stripped.replace(path)
                    done.debug_symbols += saved
                    row = record.Row(row.path, record.digest_of(path), str(path.stat().st_size))
                    changed = True
                else:
                    stripped.unlink()
            kept.append(row)
        if changed:
            record.replace(site, info.name, kept)
    for folder in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
        while folder != site and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
    return done


def _remove(site: Path, paths: Sequence[str], emptied: set[Path]) -> int:
    freed = 0
    for rel in paths:
        path = site / rel
        if path.is_file() or path.is_symlink():
            freed += path.lstat().st_size
            path.unlink()
            emptied.add(path.parent)
        # the .pyc compiled from a dropped source goes with it
        pycache = path.parent / "__pycache__"
        if rel.endswith(".py") and pycache.is_dir():
            for pyc in pycache.glob(f"{path.name[:-3]}.*.pyc"):
                freed += pyc.stat().st_size
                pyc.unlink()
                emptied.add(pycache)
    return freed


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m layerkit.installed.slim SITE [--tests] [--debug-symbols] [--remove NAME]...``: the Docker builder's
    way to apply a :class:`Slim` (and leave out distributions) inside its container."""
    parser = argparse.ArgumentParser(prog="python -m layerkit.installed.slim")
    parser.add_argument("site", type=Path)
    parser.add_argument("--tests", action="store_true")
    parser.add_argument("--debug-symbols", action="store_true")
    parser.add_argument("--remove", action="append", default=[], metavar="NAME")
    args = parser.parse_args(argv)
    try:
        apply(args.site, Slim(tests=args.tests, debug_symbols=args.debug_symbols), args.remove)
    except record.UnsafeRecordError as error:
        print(f"layerkit.installed.slim: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
