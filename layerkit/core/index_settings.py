"""Where packages come from: the one reading of the package index settings, for every installer the kit runs.

A private index is given in the environment, under pip's names (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``) or
uv's (``UV_INDEX_URL``, ``UV_EXTRA_INDEX_URL``). Where both name one, **uv's wins** (the documented rule, as uv
itself reads its own before pip's): the local build hands uv the winner, the Docker build hands the bundling
container the winner under both names (its pip reads one, its uv the other), the engine probe and the
``Requires-Python`` lookup ask the winner. So one asset hash always stands for one install.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: The default index of every installer: it stays the default (or the mirror the environment names).
PYPI = "https://pypi.org/simple"
#: pip's name -> uv's name, for each setting.
NAMES = {"PIP_INDEX_URL": "UV_INDEX_URL", "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL"}


@dataclass(frozen=True)
class IndexSettings:
    """The index and the extra index an environment names (None: the installer's default)."""

    index_url: str | None = None
    extra_index_url: str | None = None

    @classmethod
    def of(cls, environment: Mapping[str, str]) -> IndexSettings:
        """The settings of ``environment``: uv's names first, then pip's (see the module)."""
        return cls(environment.get("UV_INDEX_URL") or environment.get("UV_DEFAULT_INDEX")
                   or environment.get("PIP_INDEX_URL") or None,
                   environment.get("UV_EXTRA_INDEX_URL") or environment.get("PIP_EXTRA_INDEX_URL") or None)

    def for_uv(self) -> dict[str, str]:
        """The settings under uv's names, for a uv child."""
        return {name: value for name, value in (("UV_INDEX_URL", self.index_url),
                                                ("UV_EXTRA_INDEX_URL", self.extra_index_url)) if value}

    def for_container(self) -> dict[str, str]:
        """The settings under pip's names and uv's, for the bundling container (its pip reads one, its uv the
        other: both must name the same index)."""
        found = {}
        for pip_name, uv_name in NAMES.items():
            value = self.index_url if pip_name == "PIP_INDEX_URL" else self.extra_index_url
            if value:
                found[pip_name] = found[uv_name] = value
        return found

    @property
    def primary(self) -> str:
        """The index packages come from first: the one named, else PyPI."""
        return self.index_url or PYPI
