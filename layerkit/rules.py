"""What a layer's or function's content must satisfy to work on Lambda: the rules themselves.

``layerkit build`` applies them to what it is about to zip and stops on an error; ``layerkit.check`` applies
the same rules at synth to every asset of the app, whoever built it. Each finding is one sentence with the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from layerkit import native
from layerkit.limits import MAX_UNZIPPED_BYTES
from layerkit.record import unsafe
from layerkit.targets import Target

#: Above this share of the limit, a warning: the next dependency may not fit.
WARN_AT = 0.8


class Severity(StrEnum):
    """How a finding affects the synth: an error fails it, a warning and an info are printed."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    rule: str
    message: str


def nested_python_folder(path: str) -> str | None:
    """``python/python`` or ``python/<pkg>/python`` when ``path`` sits in a python/ folder one level too deep."""
    parts = path.split("/")
    for depth in (1, 2):
        if len(parts) > depth + 1 and parts[0] == "python" and parts[depth] == "python":
            return "/".join(parts[: depth + 1])
    return None


def layer_layout(label: str, paths: Iterable[str]) -> list[Finding]:
    """A layer's files must sit in ``python/``, modules directly in it: Lambda puts only ``/opt/python``
    (and ``/opt/python/lib/python3.X/site-packages``) on ``sys.path``."""
    paths = list(paths)
    findings = []
    if not any(p.startswith("python/") for p in paths):
        stray = sorted(p for p in paths if p.endswith(".py"))[:3]
        where = f" (found {', '.join(stray)})" if stray else ""
        findings.append(Finding(Severity.ERROR, "no-python-folder",
                                f"layer {label} has no python/ folder{where}: Lambda only puts /opt/python on "
                                "sys.path; move the modules into python/ at the root of the layer"))
    if deep := sorted({nested for p in paths if (nested := nested_python_folder(p))}):
        findings.append(Finding(Severity.ERROR, "module-too-deep",
                                f"layer {label} nests its modules one level too deep ({', '.join(deep[:3])}/...): "
                                "they will not import on Lambda; move their content up into python/"))
    return findings


def native_code(label: str, paths: Iterable[str], read_head: Callable[[str], bytes], target: Target,
                fix: str = "rebuild it for the target") -> list[Finding]:
    """Compiled files that cannot load on Lambda for ``target``: another CPython, OS or machine."""
    return [
        Finding(Severity.ERROR, "native-code-mismatch",
                f"{label}: {path} {why}, and it runs on {target.runtime} on {target.machine} Linux, where it cannot "
                f"load; {fix}")
        for path, why in native.misfits(paths, read_head, target)
    ]


def packages_without_init(label: str, relative_paths: Iterable[str]) -> list[Finding]:
    """Top-level folders of a layer's own code that hold modules but no ``__init__.py``."""
    contents: dict[str, set[str]] = {}
    for rel in relative_paths:
        parts = rel.split("/")
        if len(parts) >= 2 and parts[0] != "python":  # python/python/ is reported as too deep
            contents.setdefault(parts[0], set()).add("/".join(parts[1:]))
    return [
        Finding(Severity.WARNING, "missing-init",
                f"layer {label}: python/{folder}/ holds modules but no __init__.py, so it imports as a namespace "
                f"package that any other layer or the function's own {folder}/ folder silently merges into; "
                f"add an empty python/{folder}/__init__.py")
        for folder, names in sorted(contents.items())
        if "__init__.py" not in names and any(name.endswith(".py") for name in names)
    ]


def installed_copies(what: str, folder: str, copies: Iterable[tuple[str, str]], declaration: str) -> list[Finding]:
    """Distributions installed into the source folder by hand (``pip install -t``): they were built for the
    machine that ran pip, not for Lambda, and the kit does not know they are there."""
    copies = list(copies)
    if not copies:
        return []
    listed = ", ".join(f"{name} {version}" for name, version in copies)
    return [Finding(Severity.WARNING, "installed-in-source",
                    f"{what}: {folder} holds installed distributions ({listed}), left by a manual 'pip install -t'; "
                    f"delete them (their packages and .dist-info folders) and list them in {declaration}, which "
                    "the kit installs for the target")]


def unsafe_members(label: str, names: Iterable[str]) -> list[Finding]:
    """Zip members that are not plain relative paths (absolute, ``..``, an empty part, a backslash): extracted,
    they would land outside the folder, or name a file of the machine that built them."""
    bad = sorted(name for name in names if unsafe(name.removesuffix("/")))
    if not bad:
        return []
    return [Finding(Severity.ERROR, "unsafe-path",
                    f"{label} holds {len(bad)} member(s) outside itself (first: {bad[0]!r}, "
                    f"{unsafe(bad[0].removesuffix('/'))}): such a zip is broken or hostile and must not deploy; "
                    "rebuild it from its sources, and remove the package that wrote it")]


def duplicate_members(label: str, names: Iterable[str]) -> list[Finding]:
    """Zip members named more than once: extracted, the last silently wins, and Lambda counts every copy."""
    names = list(names)
    if not names:
        return []
    return [Finding(Severity.ERROR, "duplicate-member",
                    f"{label} holds {names[0]!r} more than once ({len(names)} name(s) repeated): no tool the CDK "
                    "uses writes such a zip, and which copy is extracted is not defined; rebuild it from its sources")]


def megabytes(size: float) -> str:
    """A size as Lambda counts it (its "250 MB" is 262,144,000 bytes)."""
    return f"{size / 1_048_576:.0f} MB"


#: What a layer's member is relative to, to tell an installed package's own test folder from a top-level one.
_SITE = re.compile(r"^python/(?:lib/python3\.\d+/site-packages/)?")


@dataclass(frozen=True)
class Shares:
    """What of some code could be left out to make it fit, in bytes, measured on it."""

    bytecode: int = 0  # .pyc (bytecode=False)
    tests: int = 0  # the packages' tests/ folders, their .pyc included (Slim(tests=True))
    debug_symbols: int = 0  # ELF debug sections and static symbol tables (Slim(debug_symbols=True))
    tests_bytecode: int = 0  # the .pyc of the tests/ folders: in both of the first two

    @classmethod
    def of(cls, sizes: Mapping[str, int], *, in_layer: bool, debug_symbols: int = 0) -> Shares:
        """The shares of an asset from its members' sizes (``debug_symbols`` measured by the caller)."""
        from layerkit.slim import is_test_file

        tests = tests_bytecode = 0
        for name, size in sizes.items():
            rel = _SITE.sub("", name) if in_layer else name
            if (not in_layer or rel != name) and is_test_file(rel):
                tests += size
                tests_bytecode += size if name.endswith(".pyc") else 0
        return cls(sum(size for name, size in sizes.items() if name.endswith(".pyc")), tests, debug_symbols,
                   tests_bytecode)

    def __add__(self, other: Shares) -> Shares:
        return Shares(self.bytecode + other.bytecode, self.tests + other.tests,
                      self.debug_symbols + other.debug_symbols, self.tests_bytecode + other.tests_bytecode)

    def saved(self, kinds: Iterable[str]) -> int:
        """The bytes that leaving out ``kinds`` (of ``bytecode``, ``tests``, ``debug_symbols``) saves together."""
        kinds = set(kinds)
        overlap = self.tests_bytecode if {"bytecode", "tests"} <= kinds else 0
        return sum(getattr(self, kind) for kind in kinds) - overlap


@dataclass(frozen=True)
class Spelling:
    """How a fix is written where the user meets it: in a construct, or on ``layerkit build``'s command line."""

    bytecode: str
    tests: str
    debug_symbols: str
    without: str


IN_CONSTRUCT = Spelling("bytecode=False", "slim=Slim(tests=True)", "slim=Slim(debug_symbols=True)",
                        "slim=Slim(without=('boto3', 'botocore'))")
ON_COMMAND_LINE = Spelling("--no-bytecode", "--slim tests", "--slim debug-symbols",
                           "--without boto3 --without botocore")


#: A share smaller than this (it rounds to 0 MB) is not worth a word.
_WORTH_SAYING = 512 * 1024


def size_findings(what: str, total: int, shares: Shares, spelling: Spelling = IN_CONSTRUCT) -> list[Finding]:
    """Lambda's 250 MB for a function's code and all its layers, unzipped: an error over it, a warning near it,
    each saying what would make it fit, measured on the code at hand."""
    if total <= WARN_AT * MAX_UNZIPPED_BYTES:
        return []
    options = [(getattr(shares, kind), kind, label, getattr(spelling, kind)) for kind, label in (
        ("bytecode", ".pyc"), ("tests", "the packages' tests/ folders"), ("debug_symbols", "debug symbols"))
        if getattr(shares, kind) >= _WORTH_SAYING]
    measured = "; ".join(f"{label} {megabytes(size)} ({fix})" for size, _, label, fix in options)
    measured = f" Measured on it: {measured}." if measured else ""
    if total <= MAX_UNZIPPED_BYTES:
        return [Finding(Severity.WARNING, "nearly-too-large",
                        f"{what} is {megabytes(total)} unzipped, over 80% of Lambda's 250 MB limit for a function's "
                        f"code and all its layers: the next dependency may not fit.{measured}")]
    largest_first = sorted(options, reverse=True)
    for count in range(1, len(options) + 1):
        chosen = largest_first[:count]
        left = total - shares.saved(kind for _, kind, _, _ in chosen)
        if left <= MAX_UNZIPPED_BYTES:
            verdict = (f" Leaving out {' and '.join(label for _, _, label, _ in chosen)} makes it {megabytes(left)}, "
                       "which fits.")
            break
    else:
        rest = (f" Even without all of them it is {megabytes(total - shares.saved(o[1] for o in options))}:"
                if options else "")
        verdict = (f"{rest} {'d' if options else 'D'}rop dependencies it does not need (the runtime provides boto3 "
                   f"and botocore: {spelling.without}), or ship the function as a container image (10 GB).")
    return [Finding(Severity.ERROR, "too-large",
                    f"{what} is {megabytes(total)} unzipped; Lambda allows 250 MB for a function's code and all its "
                    f"layers.{measured}{verdict}")]
