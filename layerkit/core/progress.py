"""Progress on every step that can take more than a couple of seconds, in uv's and the CDK's manner: a line saying
what is being done and for which layer or function once it has taken a second, a line every few seconds while it
goes on, and, on a terminal, a bar where the count is known. In a CI log (no terminal) the bar is left out: plain
lines.

A step reports to the reporter of the work it is part of (a build's ``report``, an invoke's log), set once with
:func:`reporting`; outside one, a step is silent. The longest silence of a cold build or invoke is then a few
seconds, whatever a child process (uv, Docker) prints or keeps to itself.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Reporter = Callable[[str], None]

#: A step that ends sooner says nothing.
ANNOUNCE_AFTER_S = 1.0
#: How long a step may go on without a word, once announced.
HEARTBEAT_S = 5.0

_REPORTER: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("layerkit_reporter", default=None)


@contextmanager
def reporting(report: Reporter | None) -> Iterator[None]:
    """The steps inside report to ``report`` (None: silently)."""
    token = _REPORTER.set(report)
    try:
        yield
    finally:
        _REPORTER.reset(token)


@contextmanager
def step(what: str) -> Iterator[None]:
    """Say ``what`` is being done once it has taken :data:`ANNOUNCE_AFTER_S` (a quick step says nothing), then
    that it still is every :data:`HEARTBEAT_S` seconds until it ends."""
    report = _REPORTER.get()
    if report is None:
        yield
        return
    started = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        if done.wait(ANNOUNCE_AFTER_S):
            return
        report(what)
        while not done.wait(HEARTBEAT_S):
            report(f"{what}: still at it ({time.monotonic() - started:.0f} s)")

    thread = threading.Thread(target=beat, name="layerkit-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class Bar:
    """A count of ``total`` things being done (files compressed...): a bar redrawn on a terminal's stderr, nothing
    in a log, where the step's own lines say enough."""

    WIDTH = 30

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total, self.done = what, total, 0
        self._live = _REPORTER.get() is not None and total > 0 and sys.stderr.isatty()
        self._lock = threading.Lock()
        self._drawn = 0.0

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self.done += count
            if not self._live or (time.monotonic() - self._drawn < 0.1 and self.done < self.total):
                return
            self._drawn = time.monotonic()
            filled = self.WIDTH * self.done // self.total
            sys.stderr.write(f"\rlayerkit: {self.what} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                             f"{self.done}/{self.total}")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
