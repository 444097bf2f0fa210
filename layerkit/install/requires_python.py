"""A package index's project page, read for what the installer does not say: which releases a Python accepts.

uv does not honour the upper bound of a package's ``Requires-Python`` (``dataclasses`` 0.8 says ``>=3.6, <3.7``
and still resolves for 3.12), so when the kit refuses such a release it names one the runtime accepts, read
from the index's simple API: PEP 691 JSON where the index speaks it, else the PEP 503 page's
``data-requires-python`` attributes. Credentials in the index URL are sent as HTTP basic auth and never shown.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Sequence

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from layerkit.core import uv
from layerkit.core.index_settings import IndexSettings
from layerkit.core.targets import Target

_TIMEOUT_S = 10
_ANCHOR = re.compile(r"<a\s[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(r'([a-z-]+)\s*=\s*"([^"]*)"', re.IGNORECASE)
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")


def index_url(options: Sequence[str]) -> str:
    """The index a declaration installs from: its ``--index-url``, else the environment's, else PyPI."""
    for option in options:
        flag, _, value = option.partition(" ")
        if flag == "--index-url":
            return _ENV_VAR.sub(lambda m: os.environ.get(m.group(1), ""), value)
    return IndexSettings.of(uv.build_environment()).primary


def releases(name: str, url: str) -> dict[str, set[str]]:
    """Each version of ``name`` on the index at ``url`` -> the ``Requires-Python`` of its files ("" for none)."""
    import urllib.parse  # lazy: with urllib.request, 20 ms of imports (http, ssl) only a refused release needs
    import urllib.request

    parsed = urllib.parse.urlsplit(url.rstrip("/") + f"/{name}/")
    headers = {"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"}
    if parsed.username:
        secret = f"{urllib.parse.unquote(parsed.username)}:{urllib.parse.unquote(parsed.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        parsed = parsed._replace(netloc=parsed.hostname + (f":{parsed.port}" if parsed.port else ""))
    request = urllib.request.Request(urllib.parse.urlunsplit(parsed), headers=headers)
    with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
        body = response.read().decode("utf-8", errors="replace")
        kind = response.headers.get("Content-Type", "")
    files: list[tuple[str, str]] = []
    if "json" in kind:
        files = [(f["filename"], f.get("requires-python") or "") for f in json.loads(body).get("files", [])]
    else:
        for anchor in _ANCHOR.findall(body):
            attributes = {k.lower(): html.unescape(v) for k, v in _ATTRIBUTE.findall(anchor)}
            href = attributes.get("href", "")
            files.append((urllib.parse.unquote(href.split("#")[0].rsplit("/", 1)[-1]),
                          attributes.get("data-requires-python", "")))
    found: dict[str, set[str]] = {}
    for filename, requires_python in files:
        version = _version_of(filename, name)
        if version:
            found.setdefault(version, set()).add(requires_python)
    return found


def accepts(requires_python: str, target: Target) -> bool:
    """Whether a ``Requires-Python`` admits the runtime (any of its patch releases)."""
    if not requires_python.strip():
        return True

    try:
        specifier = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return True  # unreadable: the installer's business, not a reason to refuse
    return any(specifier.contains(f"{target.python_version}.{patch}", prereleases=True) for patch in (0, 99))


def newest_accepted(name: str, url: str, target: Target) -> str | None:
    """The newest release of ``name`` whose every file admits the runtime, or None (none, or no answer)."""
    try:
        found = releases(name, url)
    except (OSError, ValueError):
        return None
    candidates = []
    for version, requirements in found.items():
        try:
            parsed = Version(version)
        except InvalidVersion:
            continue
        if not parsed.is_prerelease and all(accepts(r, target) for r in requirements):
            candidates.append(parsed)
    return str(max(candidates)) if candidates else None


def _version_of(filename: str, name: str) -> str | None:
    """The version in a wheel's or source archive's file name."""
    stem = re.sub(r"\.(whl|tar\.gz|zip|tar\.bz2)$", "", filename)
    if stem == filename:
        return None
    if filename.endswith(".whl"):
        parts = stem.split("-")
        return parts[1] if len(parts) >= 5 else None
    prefix = re.compile("[-_.]+".join(re.escape(part) for part in re.split(r"[-_.]+", name)) + "-", re.IGNORECASE)
    return stem[match.end():] if (match := prefix.match(stem)) else None
