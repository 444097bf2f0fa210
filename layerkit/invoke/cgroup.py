"""A memory cgroup for one sandbox: the function's memory size as a hard limit, its peak, and whether the kernel
killed it for going over.

Lambda kills a function that uses more than its memory size (``Runtime.OutOfMemory``). The sandbox gets the
same limit where this machine lets the kit make a memory cgroup: a child of the kit's own cgroup, in cgroup v1's
``memory`` hierarchy or in cgroup v2 where the memory controller is delegated to it (as root, or in a delegated
subtree). Where it cannot, :func:`create` returns None, and the invoke judges memory after the fact from the
processes' peak (:mod:`layerkit.invoke.execution`).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Set to 0 to run sandboxes without a memory cgroup (memory is then judged after the fact).
DISABLE = "LAYERKIT_SANDBOX_CGROUP"


@dataclass
class MemoryCgroup:
    """One sandbox's cgroup: write a process's pid to :attr:`procs` to put it (and its children) in."""

    path: Path
    version: int

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def peak_bytes(self) -> int:
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        with contextlib.suppress(OSError, ValueError):
            return int((self.path / name).read_text().split()[0])
        return 0

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding the limit."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def remove(self) -> None:
        """Remove the cgroup once its processes are gone (they may take a moment to leave)."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _own_path(version: int) -> str | None:
    """This process's cgroup path in the v1 memory hierarchy or in v2."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if version == 1 and "memory" in controllers.split(","):
            return path
        if version == 2 and controllers == "":
            return path
    return None


def create(memory_mb: int) -> MemoryCgroup | None:
    """A new memory cgroup limited to ``memory_mb`` (swap included), or None where this machine allows none."""
    if os.environ.get(DISABLE) == "0":
        return None
    name = f"layerkit-{uuid.uuid4().hex[:12]}"
    limit = str(memory_mb * 1024 * 1024)
    v1 = CGROUP_ROOT / "memory"
    if (own := _own_path(1)) is not None and (v1 / "memory.limit_in_bytes").exists():
        return _make(v1 / own.lstrip("/") / name, 1, {"memory.limit_in_bytes": limit,
                                                      "memory.memsw.limit_in_bytes": limit})
    if (own := _own_path(2)) is not None and (CGROUP_ROOT / "cgroup.controllers").exists():
        parent = CGROUP_ROOT / own.lstrip("/")
        with contextlib.suppress(OSError):
            if "memory" in (parent / "cgroup.subtree_control").read_text().split():
                return _make(parent / name, 2, {"memory.max": limit, "memory.swap.max": "0"})
    return None


def _make(path: Path, version: int, settings: dict[str, str]) -> MemoryCgroup | None:
    try:
        path.mkdir()
    except OSError:
        return None
    group = MemoryCgroup(path, version)
    for name, value in settings.items():
        try:
            (path / name).write_text(value)
        except FileNotFoundError:
            continue  # memsw without swap accounting, swap.max without swap: nothing to limit there
        except OSError:
            group.remove()
            return None
    return group
