"""Lambda's 250 MB for a function's code and all its layers, unzipped: an error over it, a warning near it, each
saying what would make it fit, measured on the code at hand, and spelled as the user can type it where they meet it
(a construct's argument, or ``layerkit build``'s option)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from layerkit.core.spelling import in_use
from layerkit.installed.layer_paths import importable
from layerkit.installed.slim import is_test_file
from layerkit.rules.findings import Finding, Severity
from layerkit.rules.limits import MAX_UNZIPPED_BYTES

#: Above this share of the limit, a warning: the next dependency may not fit.
WARN_AT = 0.8


def megabytes(size: float) -> str:
    """A size as Lambda counts it (its "250 MB" is 262,144,000 bytes)."""
    return f"{size / 1_048_576:.0f} MB"




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

        tests = tests_bytecode = 0
        for name, size in sizes.items():
            rel = importable(name) if in_layer else name  # an installed package's own tests, not a top-level one
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


#: A share smaller than this (it rounds to 0 MB) is not worth a word.
_WORTH_SAYING = 512 * 1024


def size_findings(what: str, total: int, shares: Shares) -> list[Finding]:
    """Lambda's 250 MB for a function's code and all its layers, unzipped: an error over it, a warning near it,
    each saying what would make it fit, measured on the code at hand, its fixes spelled where the user is."""
    spelling = in_use()
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
