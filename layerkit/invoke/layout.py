"""Lay a function out as Lambda does: code at ``/var/task``; layers merged in order into ``/opt``.

Each layout is prepared once per content (the bytes of every asset, never their names or sizes alone) in the
kit's cache and reused by later invokes; a layout appears in one atomic rename, so an interrupted invoke never
leaves a half-merged ``/opt`` behind for the next one. Each use checks the layout against the list of files it was
made with (every path and size): one that lost or changed a file is made again, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from layerkit.assembly import Function
from layerkit.assembly.assets import AssetContent
from layerkit.core import progress, uv
from layerkit.core.cache import materialize_verified, resolve_cache_dir
from layerkit.core.errors import InvokeError, LayerkitError
from layerkit.core.extraction import Extraction
from layerkit.core.interpreters import find_python
from layerkit.core.targets import Target
from layerkit.install.bytecode import compile_sources, sources_of
from layerkit.invoke.environment import RUNTIME_DIR

#: The official runtime interface client, pinned: the loop that talks to the Runtime API inside the sandbox.
AWSLAMBDARIC = "awslambdaric==4.2.2"


@dataclass(frozen=True)
class Layout:
    task: Path
    opt: Path


def _digest_of(content: AssetContent) -> str:
    """A sha256 of an asset's content: a zip's bytes, or every file of a folder (path, mode and bytes)."""
    if content.is_zip:
        with open(content.path, "rb") as file:
            return "zip-" + hashlib.file_digest(file, "sha256").hexdigest()
    digest = hashlib.sha256(b"folder")
    for entry in content.entries:
        assert entry.path is not None
        digest.update(entry.name.encode() + b"\0" + (b"x" if os.access(entry.path, os.X_OK) else b"-"))
        with open(entry.path, "rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def extract(content: AssetContent, destination: Path) -> None:
    """Lay ``content`` (a zip or a folder asset) out in ``destination`` as Lambda extracts it: over what is there
    already (a later layer replaces an earlier one's files), with the modes the zip records (an executable in
    ``/opt/bin`` stays executable), its links as links (never followed here), nothing written outside it
    (:class:`~layerkit.core.extraction.Extraction`)."""
    content.check_unique()
    extraction = Extraction(destination, content.what, into="/opt or /var/task", error=InvokeError)
    if content.is_zip:
        with content.open_zip() as archive:
            extraction.zip(archive)
        return
    for entry in content.entries:
        assert entry.path is not None
        with open(entry.path, "rb") as source:
            extraction.write(entry.name, source, os.access(entry.path, os.X_OK))


def _laid_out(content: AssetContent, destination: Path, where: str) -> None:
    with progress.step(f"{content.what}: laying out {where} ({content.unzipped_bytes / 1e6:.1f} MB)"):
        extract(content, destination)


def prepare_layout(function: Function, cache_dir: Path | None = None) -> Layout:
    """The function's ``/var/task`` and merged ``/opt`` as host folders (mounted read-only later), each made from
    the assets' entries alone, never through a link (:func:`extract`)."""
    root = resolve_cache_dir(cache_dir) / "invoke"
    code = AssetContent(function.code, f"function {function.id}")
    task = _folder(root / f"task-{_digest_of(code)}", lambda d: _laid_out(code, d, "/var/task"))
    layers = [AssetContent(use.layer.asset, f"layer {use.layer.id}") for use in function.layers
              if use.layer.asset is not None]
    key = hashlib.sha256("\0".join(_digest_of(layer) for layer in layers).encode()).hexdigest()

    def merge_in_order(destination: Path) -> None:
        for layer in layers:
            _laid_out(layer, destination, "/opt")

    return Layout(task=task, opt=_folder(root / f"opt-{key}", merge_in_order))


def _manifest(root: Path) -> list[list[object]]:
    """Every path of a laid-out folder, its kind and size (links not followed)."""
    found: list[list[object]] = []
    for folder, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            kind = "link" if stat.S_ISLNK(info.st_mode) else "file"
            found.append([os.path.relpath(path, root).replace(os.sep, "/"), kind, info.st_size])
    return sorted(found)


def _folder(entry: Path, fill: Callable[[Path], None]) -> Path:
    """A cache entry whose ``root/`` is filled by ``fill``: the folder that is mounted (nothing else in it),
    checked against its manifest on every use and made again when it no longer matches."""

    def fill_root(tree: Path) -> dict[str, object]:
        (tree / "root").mkdir()
        fill(tree / "root")
        return {"files": _manifest(tree / "root")}

    materialize_verified(entry, fill_root, ("files",), lambda meta: meta["files"] == _manifest(entry / "root"))
    return entry / "root"


def prepare_runtime(target: Target, cache_dir: Path | None = None) -> Path:
    """A ``/var/runtime`` folder as the runtime's: awslambdaric for the target, the AWS SDK the runtime provides
    (:attr:`~layerkit.core.targets.Target.runtime_sdk`, with its dependencies), and the kit's bootstrap."""
    bootstrap = Path(__file__).with_name("bootstrap.py")
    pins = [AWSLAMBDARIC, *(f"{name}=={version}" for name, version in sorted(target.runtime_sdk.items()))]
    # A changed bootstrap or SDK gets a new folder.
    revision = hashlib.sha256(bootstrap.read_bytes() + "\0".join(pins).encode()).hexdigest()[:12]
    name = f"{AWSLAMBDARIC.replace('==', '-')}-{target.runtime}-{target.machine}-{revision}"
    entry = resolve_cache_dir(cache_dir) / "runtime" / name

    def install(destination: Path) -> None:
        requirements = destination.with_name("requirements.txt")
        requirements.write_text("\n".join(pins) + "\n", encoding="utf-8")
        try:
            with progress.step(f"preparing the {target.runtime} runtime for local invokes ({', '.join(pins)}), once "
                               f"for {target}"):
                uv.install(requirements, destination, target, cwd=destination.parent, what="local invoke")
        except LayerkitError as error:
            raise InvokeError(f"installing {', '.join(pins)} for {target} failed: {error}") from None
        shutil.copy2(bootstrap, destination / "bootstrap.py")
        # Compiled as on Lambda, where /var/runtime holds its .pyc: botocore alone takes a second to compile, at
        # every cold start of a function that imports boto3, in a folder the function cannot write.
        with contextlib.suppress(LayerkitError):
            compile_sources(find_python(target.python_version), sources_of(destination, RUNTIME_DIR))

    return _folder(entry, install)
