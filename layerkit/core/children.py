"""Child processes (uv, the target Python compiling ``.pyc``) that stop when the build stops.

A killed ``cdk synth`` must not leave an installer writing into the cache. Each system gives a different
guarantee, and the kit takes the strongest one it has:

- Linux: ``PR_SET_PDEATHSIG``: the kernel kills the child when the build dies, even by SIGKILL.
- Windows: a job object that kills its processes when its last handle (the build's) closes.
- elsewhere (macOS): the child leads its own process group, which the build kills on any exception or
  interrupt; a build killed by SIGKILL cannot do that, and the child finishes in its ``.tmp-`` folder, which
  nobody reads.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

PR_SET_PDEATHSIG = 1


@functools.cache
def _linux_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # lazy: only where a child is started, and per system

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with_parent(prctl: Callable[..., int]) -> Callable[[], None]:
    parent = os.getpid()

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the build died between fork and prctl: nobody would kill us
            os._exit(1)

    return in_child


class _WindowsJob:
    """A job object that kills every process assigned to it when the build's handle closes."""

    def __init__(self) -> None:
        import ctypes  # lazy: only where a child is started, and per system
        from ctypes import wintypes  # lazy: only where a child is started, and per system

        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        self._kernel32 = kernel32
        self.handle = kernel32.CreateJobObjectW(None, None)

        class _Limits(ctypes.Structure):
            _fields_ = [  # JOBOBJECT_EXTENDED_LIMIT_INFORMATION, of which only LimitFlags is set
                ("PerProcessUserTimeLimit", ctypes.c_int64), ("PerJobUserTimeLimit", ctypes.c_int64),
                ("LimitFlags", wintypes.DWORD), ("MinimumWorkingSetSize", ctypes.c_size_t),
                ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", wintypes.DWORD),
                ("Affinity", ctypes.c_size_t), ("PriorityClass", wintypes.DWORD),
                ("SchedulingClass", wintypes.DWORD), ("IoCounters", ctypes.c_uint64 * 6),
                ("ProcessMemoryLimit", ctypes.c_size_t), ("JobMemoryLimit", ctypes.c_size_t),
                ("PeakProcessMemoryUsed", ctypes.c_size_t), ("PeakJobMemoryUsed", ctypes.c_size_t),
            ]

        limits = _Limits()
        limits.LimitFlags = 0x2000  # JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        kernel32.SetInformationJobObject(self.handle, 9, ctypes.byref(limits), ctypes.sizeof(limits))

    def assign(self, process: subprocess.Popen[Any]) -> None:
        self._kernel32.AssignProcessToJobObject(self.handle, int(process._handle))  # type: ignore[attr-defined]


@functools.cache
def _windows_job() -> _WindowsJob | None:
    try:
        return _WindowsJob()
    except (OSError, AttributeError):
        return None


def start(command: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(command, **options)`` for a child that must not outlive the build."""
    if sys.platform == "win32":
        options.setdefault("creationflags", subprocess.CREATE_NEW_PROCESS_GROUP)  # type: ignore[attr-defined]
        process = subprocess.Popen(command, **options)
        if job := _windows_job():
            job.assign(process)
        return process
    if prctl := _linux_prctl():
        return subprocess.Popen(command, preexec_fn=_die_with_parent(prctl), **options)
    return subprocess.Popen(command, start_new_session=True, **options)


def stop(process: subprocess.Popen[Any]) -> None:
    """Kill ``process`` (and, where it leads one, its process group) if it still runs."""
    if process.poll() is not None:
        return
    try:
        if sys.platform != "win32" and _linux_prctl() is None:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def run(command: Sequence[str], *, input_text: str | None = None, **options: Any) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to completion, capturing its text output; it is killed if the build stops first."""
    process = start(command, stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                    errors="replace", **options)
    try:
        out, err = process.communicate(input_text)
    except BaseException:
        stop(process)
        raise
    return subprocess.CompletedProcess(list(command), process.returncode, out, err)
