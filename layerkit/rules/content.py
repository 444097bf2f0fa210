"""What a layer's or function's content must satisfy to work on Lambda: the rules themselves.

``layerkit build`` applies them to what it is about to zip and stops on an error; ``layerkit.check`` applies
the same rules at synth to every asset of the app, whoever built it. Each finding is one sentence with the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from layerkit.core.targets import Target
from layerkit.installed.record import unsafe
from layerkit.rules import native
from layerkit.rules.findings import Finding, Severity


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
