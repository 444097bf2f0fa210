"""The kit's cache on disk: where it is, and how an entry gets into it.

Every entry (a built layer or function, an installed package, a staged folder, an invoke layout) is filled in
a private ``.tmp-`` folder and appears in one atomic rename, under a lock held by the one process that fills
it: two ``cdk synth`` at once share the work, and nothing half-written is ever read. Each ``.tmp-`` folder has
a lock of its own, held while it is in use: one whose lock is free was left by an interrupted process, and the
next fill in the same folder removes it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from layerkit.core.errors import CacheError

#: The name of the file that marks an entry complete, written last inside the private folder.
DONE = "entry.json"


def default_cache_dir() -> Path:
    """``$LAYERKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/layerkit``, else ``~/.cache/layerkit``."""
    if env := os.environ.get("LAYERKIT_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "layerkit"


def resolve_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else the default, made absolute, and one only this user can write (:func:`private_root`).

    Installers run in the source folder (for relative ``--find-links``) and the sandbox mounts folders by path:
    a relative cache path would point somewhere else there (a build once installed into the layer folder).
    """
    return private_root(Path(cache_dir or default_cache_dir()).absolute())


@functools.cache
def private_root(root: Path) -> Path:
    """The folder the kit keeps its cache in, for ``root``: ``root`` itself where no other user can write it (nor
    rename it away); else this user's own folder inside it, ``root/.layerkit-user-<uid>`` (mode 0700), so that a
    cache folder shared by several users (mode 1777) never has one read another's entries; and where even that
    folder is not this user's, a new private folder, with a warning. An entry another user could have written is
    never read: it could hold anything, under a key anyone can compute."""
    if os.name != "posix":
        return root
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError:
        return root  # the first write says why, with the fix
    if (shared := _not_private(root)) is None:
        return root
    mine = root / f".layerkit-user-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        mine.mkdir(mode=0o700)
    if (why := _not_private(mine)) is None:
        return mine
    import atexit  # lazy: only a cache another user owns needs a folder of its own
    import shutil  # lazy: 7 ms: only filling or removing an entry needs it
    import tempfile  # lazy: only a cache another user owns needs a folder of its own

    fallback = Path(tempfile.mkdtemp(prefix="layerkit-cache-"))
    atexit.register(shutil.rmtree, fallback, ignore_errors=True)
    print(f"layerkit: warning: the cache {root} is not yours alone ({shared}) and {mine} is not yours ({why}): "
          f"nothing cached there is used; building in {fallback}; set LAYERKIT_CACHE_DIR to a folder of yours",
          file=sys.stderr, flush=True)
    return fallback


def _not_private(folder: Path) -> str | None:
    """Why another user could change what ``folder`` holds (it, or a folder above it, is theirs or writable by
    them), or None when only this user (and root) can."""
    uid = os.geteuid()
    try:
        info = os.lstat(folder)
    except OSError as error:
        return f"it cannot be read: {error.strerror}"
    if stat.S_ISLNK(info.st_mode):
        info = os.stat(folder)
    if not stat.S_ISDIR(info.st_mode):
        return "it is not a folder"
    if info.st_uid not in (uid, 0):
        return f"it belongs to user {info.st_uid}"
    if _writable_by_others(info):
        return f"other users may write in it (mode {stat.S_IMODE(info.st_mode):o})"
    for parent in Path(os.path.realpath(folder)).parents:
        try:
            above = os.stat(parent)
        except OSError:
            continue
        if above.st_uid not in (uid, 0) or (_writable_by_others(above) and not above.st_mode & stat.S_ISVTX):
            return f"{parent} above it can be changed by other users, who could put another folder in its place"
    return None


def _writable_by_others(info: os.stat_result) -> bool:
    """Whether a user other than this one may write in a folder with ``info``: others may, or its group may and
    someone else is in that group (a user's own private group, as ``umask 002`` systems make, is not shared)."""
    if info.st_mode & stat.S_IWOTH:
        return True
    if not info.st_mode & stat.S_IWGRP:
        return False
    import grp  # lazy: POSIX only, and only a group-writable folder asks
    import pwd  # lazy: POSIX only, and only a group-writable folder asks

    try:
        members = set(grp.getgrgid(info.st_gid).gr_mem)
        me = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return True
    return info.st_gid != os.getegid() or bool(members - {me})


def read_entry(entry: Path, required: Iterable[str] = ()) -> dict[str, Any] | None:
    """The metadata of a complete entry, or None (missing, half-written, unreadable, or without one of the
    ``required`` keys: never trusted)."""
    try:
        data = json.loads((entry / DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or any(key not in data for key in required):
        return None
    return data


@contextmanager
def scratch(parent: Path, label: str) -> Iterator[Path]:
    """A private, empty ``.tmp-`` folder in ``parent``, removed afterwards; stale ones are swept first."""
    import shutil  # lazy: 7 ms: only filling or removing an entry needs it

    from filelock import FileLock  # lazy: 21 ms: a cache hit takes no lock

    parent.mkdir(parents=True, exist_ok=True)
    sweep(parent)
    folder = parent / f".tmp-{label}-{os.urandom(6).hex()}"
    lock = FileLock(f"{folder}.lock")
    try:
        with lock:  # held before the folder exists, so no sweep can take it for an abandoned one
            folder.mkdir()
            try:
                yield folder
            except OSError as error:
                if error.errno == errno.ENOSPC:  # measured before the folder goes: what the work had written
                    raise disk_full(parent, _size_of(folder)) from None
                raise
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        Path(f"{folder}.lock").unlink(missing_ok=True)


def _size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


#: The folders this process has swept: a folder left by a process that died is swept by the next one to write
#: there, once; sweeping before every entry would list a cache of thousands of entries once per entry.
_SWEPT: set[Path] = set()


def sweep(parent: Path) -> None:
    """Remove the ``.tmp-`` folders of ``parent`` whose process is gone (their lock is free), once per process."""
    if parent in _SWEPT:
        return
    _SWEPT.add(parent)
    import shutil  # lazy: 7 ms: only filling or removing an entry needs it

    from filelock import FileLock, Timeout  # lazy: 21 ms: a cache hit takes no lock

    for stale in parent.glob(".tmp-*"):
        if stale.name.endswith(".lock"):
            if not stale.with_suffix("").exists():  # its folder is gone: a lock left by a killed process
                _unlink_if_free(stale)
            continue
        lock = FileLock(f"{stale}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue  # in use by a live build
        try:
            shutil.rmtree(stale, ignore_errors=True)
        finally:
            lock.release()
        Path(f"{stale}.lock").unlink(missing_ok=True)


def _unlink_if_free(lock_path: Path) -> None:
    from filelock import FileLock, Timeout  # lazy: 21 ms: a cache hit takes no lock

    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return
    try:
        lock_path.unlink(missing_ok=True)
    finally:
        lock.release()


def materialize(entry: Path, fill: Callable[[Path], dict[str, Any]],
                required: Iterable[str] = ()) -> tuple[dict[str, Any], bool]:
    """The metadata of cache entry ``entry``, filled by ``fill`` the first time; ``(metadata, filled_now)``.

    ``fill`` gets an empty folder and returns the entry's metadata (JSON), written as its completion marker.
    An entry that exists without a readable marker, or whose marker lacks a ``required`` key (from an older kit,
    or damaged), is replaced. A disk that fills up is a :class:`~layerkit.core.errors.CacheError` naming the cache
    folder and what the fill had written by then.
    """
    required = tuple(required)
    if (meta := read_entry(entry, required)) is not None:
        return meta, False
    from filelock import FileLock  # lazy: 21 ms: a cache hit takes no lock

    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(entry.parent / f".{entry.name}.lock")):
            if (meta := read_entry(entry, required)) is not None:  # another process filled it while we waited
                return meta, False
            with scratch(entry.parent, entry.name[:16]) as work:
                tree = work / "tree"
                tree.mkdir()
                meta = fill(tree)
                (tree / DONE).write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
                if entry.exists():  # damaged or from an older kit: never read, replaced here under the lock
                    import shutil  # lazy: 7 ms: only filling or removing an entry needs it

                    shutil.rmtree(entry)
                os.replace(tree, entry)  # the one step that makes the entry visible
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise disk_full(entry.parent, 0) from None
        raise
    return meta, True


def materialize_verified(entry: Path, fill: Callable[[Path], dict[str, Any]], required: Iterable[str],
                         verify: Callable[[dict[str, Any]], bool],
                         on_damaged: Callable[[], None] | None = None) -> tuple[dict[str, Any], bool]:
    """:func:`materialize`, with a hit checked by ``verify`` first: an entry whose files no longer match its
    metadata (a damaged disk, a hand or a process that wrote into the cache) is discarded and filled again, never
    returned. ``on_damaged`` says so to the user."""
    required = tuple(required)
    meta, filled = materialize(entry, fill, required)
    if filled or verify(meta):
        return meta, filled
    if on_damaged is not None:
        on_damaged()
    discard(entry)
    return materialize(entry, fill, required)


def disk_full(folder: Path, written: int) -> Exception:
    """The error for a cache whose disk filled up in ``folder`` after the work there had written ``written``
    bytes (its folder ``builds``, ``packages``... names the cache's root as its parent)."""
    import shutil  # lazy: 7 ms: only filling or removing an entry needs it


    root = folder.parent
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        free = 0
    needed = f"; the build had written {written / 1e6:.1f} MB there and needed more" if written else ""
    return CacheError(
        f"the disk of the layerkit cache {root} is full ({free / 1e6:.1f} MB free{needed}): free some space, or "
        "point LAYERKIT_CACHE_DIR at a larger disk (deleting the cache folder is always safe)"
    )


def intact(path: Path, size: int, sha256: str) -> bool:
    """Whether the file an entry recorded is still the one it wrote (a damaged cache is rebuilt, never shipped)."""
    try:
        if path.stat().st_size != size:
            return False
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest() == sha256
    except OSError:
        return False


def discard(entry: Path) -> None:
    """Remove a damaged entry, so that the next :func:`materialize` fills it again."""
    import shutil  # lazy: 7 ms: only filling or removing an entry needs it

    from filelock import FileLock  # lazy: 21 ms: a cache hit takes no lock

    with FileLock(str(entry.parent / f".{entry.name}.lock")):
        shutil.rmtree(entry, ignore_errors=True)
