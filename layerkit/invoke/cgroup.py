"""Cgroups for one sandbox: the function's memory size as a hard limit, Lambda's cap on processes and threads, the
peak memory, and whether the kernel killed the function for going over.

Lambda kills a function that uses more than its memory size (``Runtime.OutOfMemory``), and an execution
environment runs at most 1,024 processes and threads. The sandbox gets both where this machine lets the kit make
cgroups: children of the kit's own cgroups, in cgroup v1's ``memory`` and ``pids`` hierarchies, or in cgroup v2
where the controllers are delegated to it (as root, or in a delegated subtree). Where it cannot, :func:`create`
gives no group for that controller: the invoke then judges memory after the fact from the processes' peak
(:mod:`layerkit.invoke.execution`), and the process cap is the ``RLIMIT_NPROC`` the sandbox starts with.

The folders :func:`create` makes are removed by :meth:`Cgroups.remove`, and, should the kit be killed first, by
the sandbox's watchdog (:mod:`layerkit.invoke.sandbox`), so none is left behind.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from layerkit.rules.limits import MAX_PROCESSES

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Set to 0 to run sandboxes without cgroups (memory is then judged after the fact, processes capped by rlimit).
DISABLE = "LAYERKIT_SANDBOX_CGROUP"
#: The sandbox's own processes (bubblewrap's monitor and its init), which Lambda's cap does not count.
SANDBOX_PROCESSES = 2


@dataclass
class Cgroups:
    """One sandbox's cgroups (one per hierarchy; one folder in cgroup v2): a process whose pid is written to each
    of :attr:`procs` is in all of them, with its children."""

    memory: Path | None = None
    pids: Path | None = None
    version: int = 1
    made: list[Path] = field(default_factory=list)  # every folder made, to remove

    @property
    def procs(self) -> list[Path]:
        return [folder / "cgroup.procs" for folder in dict.fromkeys(f for f in (self.memory, self.pids) if f)]

    @property
    def limits_memory(self) -> bool:
        return self.memory is not None

    def join(self, pid: int) -> None:
        """Put process ``pid`` in every group (a sandbox's launcher, before it becomes bubblewrap)."""
        for procs in self.procs:
            procs.write_text(str(pid))

    def peak_bytes(self) -> int:
        if self.memory is None:
            return 0
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        with contextlib.suppress(OSError, ValueError):
            return int((self.memory / name).read_text().split()[0])
        return 0

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding the limit."""
        if self.memory is None:
            return 0
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError, ValueError):
            for line in (self.memory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def remove(self) -> None:
        """Remove the groups once their processes are gone (they may take a moment to leave)."""
        for folder in self.made:
            _remove(folder)


def _remove(folder: Path) -> None:
    for _ in range(50):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup path in the v1 hierarchy of ``controller``, or in v2 (``controller`` None)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller is not None and controller in controllers.split(","):
            return path
        if controller is None and controllers == "":
            return path
    return None


def create(memory_mb: int) -> Cgroups:
    """New cgroups for one sandbox: memory limited to ``memory_mb`` (swap included), processes and threads to
    Lambda's 1,024; a hierarchy this machine does not let the kit use is left out (see the module)."""
    groups = Cgroups()
    if os.environ.get(DISABLE) == "0":
        return groups
    name = f"layerkit-{uuid.uuid4().hex[:12]}"
    limit = str(memory_mb * 1024 * 1024)
    pids = str(MAX_PROCESSES + SANDBOX_PROCESSES)
    v1_memory, v1_pids = CGROUP_ROOT / "memory", CGROUP_ROOT / "pids"
    if (own := _own_path("memory")) is not None and (v1_memory / "memory.limit_in_bytes").exists():
        groups.memory = _make(groups, v1_memory / own.lstrip("/") / name, {
            "memory.limit_in_bytes": limit, "memory.memsw.limit_in_bytes": limit})
    if (own := _own_path("pids")) is not None and (v1_pids / own.lstrip("/") / "cgroup.procs").exists():
        groups.pids = _make(groups, v1_pids / own.lstrip("/") / name, {"pids.max": pids})
    if groups.memory is None and groups.pids is None and (own := _own_path(None)) is not None \
            and (CGROUP_ROOT / "cgroup.controllers").exists():
        parent = CGROUP_ROOT / own.lstrip("/")
        with contextlib.suppress(OSError):
            delegated = (parent / "cgroup.subtree_control").read_text().split()
            settings = {}
            if "memory" in delegated:
                settings.update({"memory.max": limit, "memory.swap.max": "0"})
            if "pids" in delegated:
                settings["pids.max"] = pids
            if settings and (folder := _make(groups, parent / name, settings)) is not None:
                groups.version = 2
                groups.memory = folder if "memory" in delegated else None
                groups.pids = folder if "pids" in delegated else None
    return groups


def _make(groups: Cgroups, path: Path, settings: dict[str, str]) -> Path | None:
    try:
        path.mkdir()
    except OSError:
        return None
    for name, value in settings.items():
        try:
            (path / name).write_text(value)
        except FileNotFoundError:
            continue  # memsw without swap accounting, swap.max without swap: nothing to limit there
        except OSError:
            _remove(path)
            return None
    groups.made.append(path)
    return path
