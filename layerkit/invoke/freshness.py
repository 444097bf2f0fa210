"""Is what an assembly holds still what the folders hold? ``layerkit invoke`` runs the synthesized code, and says
so in one line when a function's or layer's folder changed after the synth (``--synth`` synthesizes first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from layerkit.assembly import Function
from layerkit.errors import LayerkitError


def _changed(source: dict[str, Any] | None) -> str | None:
    """The folder, when it no longer matches what the assembly recorded of it."""
    from layerkit.sources import SourceFolder

    if not source or not source.get("digest"):
        return None
    path = Path(source["path"])
    try:
        excludes = tuple(source.get("excludes", ()))
        loader = {"layer": SourceFolder.layer, "entry-layer": SourceFolder.entry_layer}.get(
            source.get("kind", ""), SourceFolder.function)
        folder = loader(path, excludes)
        digest = folder.folder_digest()
    except LayerkitError:
        return str(path)  # it no longer even reads as a folder: it changed
    except OSError:
        return str(path)
    return None if digest == source["digest"] else str(path)


def stale_folders(function: Function) -> list[str]:
    """The folders of ``function`` and its layers that changed since the assembly was synthesized."""
    sources = [function.source, *(use.layer.source for use in function.layers)]
    return [folder for source in sources if (folder := _changed(source))]
