"""Is what an assembly holds still what the folders hold? ``layerkit invoke`` runs the synthesized code, and says
so in one line when a function's or layer's folder changed after the synth (``--synth`` synthesizes first).

The folders are the ones the assembly's metadata names: only those inside the app's own folder (where the
assembly sits) are read, so an assembly made elsewhere (a CI artifact) never has the kit read a folder of this
machine that it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from layerkit.assembly import Function
from layerkit.core.errors import LayerkitError
from layerkit.sources import SourceFolder


def _changed(source: dict[str, Any] | None, app_folder: Path) -> str | None:
    """The folder, when it no longer matches what the assembly recorded of it."""
    if not source or not source.get("digest"):
        return None
    path = Path(source["path"])
    if not path.resolve().is_relative_to(app_folder):
        return None  # not this app's folder: the assembly was made elsewhere
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


def stale_folders(function: Function, assembly_dir: Path) -> list[str]:
    """The folders of ``function`` and its layers, inside the app folder of ``assembly_dir`` (its parent), that
    changed since the assembly was synthesized."""
    app_folder = assembly_dir.resolve().parent
    sources = [function.source, *(use.layer.source for use in function.layers)]
    return [folder for source in sources if (folder := _changed(source, app_folder))]
