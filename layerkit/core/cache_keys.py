"""What else decides the bytes of a build beside its inputs: the versions of the tools that make it. Part of every
cache key (a build, a package entry, a staged folder), never of an asset hash."""

from __future__ import annotations

import deflate

from layerkit.core import uv
from layerkit.core.kit_version import __version__


def builder_version() -> str:
    """What else decides the bytes of a local build; part of the cache key, not of the asset hash."""
    return f"layerkit {__version__}; uv {uv.version()}; deflate {deflate.__version__}"
