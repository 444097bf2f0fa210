"""A finding: one sentence about a layer or function, with its fix, at the severity it has at synth; and every rule
that makes one, each under the id its annotation carries (``layerkit:<rule>``), listed once so that
``docs/troubleshooting.md`` can be checked to explain each."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    """How a finding affects the synth: an error fails it, a warning and an info are printed."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


#: Every rule, by id: what it finds. An id not listed here is refused (a typo never becomes a new rule).
RULES = {
    "no-python-folder": "a layer without python/",
    "module-too-deep": "a layer's modules one folder too deep",
    "missing-init": "a package of a layer's own code without __init__.py",
    "native-code-mismatch": "compiled code for another Python, system or machine",
    "runtime-mismatch": "a layer built for another runtime than its function's",
    "architecture-mismatch": "a layer built for another architecture than its function's",
    "too-many-layers": "more than 5 layers",
    "too-large": "over 250 MB unzipped",
    "nearly-too-large": "over 80% of 250 MB unzipped",
    "large-zip": "over the 50 MB of a direct upload",
    "shadowed-module": "two layers ship one module",
    "version-clash": "a function ships another version of a layer's distribution",
    "unpinned-requirement": "a requirement not pinned to one version",
    "installed-in-source": "distributions installed into the folder by hand",
    "link-outside": "a link that leads outside the folder",
    "unsafe-link": "a link to a pseudo-file, a device, or one that loops",
    "unsafe-path": "a zip member outside the zip",
    "duplicate-member": "a zip member named twice",
    "literal-credential": "a credential written into a dependency file",
    "unread-declaration": "a requirements file the kit does not read",
    "owned-elsewhere": "a layer another app publishes",
    "built-without-docker": "an app built without Docker, and why",
}


def annotation_id(rule: str) -> str:
    """The id a rule's annotation carries (``layerkit:<rule>``); an id not in :data:`RULES` is refused."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}: add it to RULES (and to docs/troubleshooting.md)")
    return f"layerkit:{rule}"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    rule: str  # one of RULES
    message: str

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown rule {self.rule!r}: add it to RULES (and to docs/troubleshooting.md)")
