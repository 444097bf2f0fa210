"""One Lambda execution environment, whichever backend runs it: the kit's Runtime API, request IDs, the init phase,
timeouts, limits, log lines and Lambda's error shapes are the same for the sandbox and for a container.

A backend only launches the runtime (``awslambdaric``, pointed at the Runtime API), kills it, and measures its
memory (:class:`Launcher`). The environment is started by the first invoke and reused by the next ones (warm), as
Lambda does; a timeout, a crash, an out-of-memory kill or a failed init discards it, and the next invoke starts a
new one (cold). An event is submitted once: whatever fails, the handler never runs twice for it.

As on Lambda:

- **Init** (starting the runtime and importing the handler's module) has 10 s of its own. An init that does not
  finish in time, or fails, is reported (``INIT_REPORT ... Phase: init``) and retried at the first invoke, where
  the function's own timeout covers init and handler together (``INIT_REPORT ... Phase: invoke``).
- **Limits**: a response over 6,291,556 bytes is ``Function.ResponseSizeTooLarge``; a function over its memory
  size is ``Runtime.OutOfMemory`` (killed where the backend enforces the limit, judged from its peak where not).
- **Log lines**: ``START``, the function's output, ``END`` and ``REPORT``, in that order, on the log stream; the
  output of each invoke is also kept with its result.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import queue
import select
import termios
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import IO, Protocol

from layerkit.assembly import Function
from layerkit.invoke.result import Invocation
from layerkit.invoke.runtime_api import Outcome, RuntimeApi
from layerkit.rules.limits import INIT_TIMEOUT_S, MAX_RESPONSE_BYTES

RESPONSE_TOO_LARGE = {"errorType": "Function.ResponseSizeTooLarge",
                      "errorMessage": f"Response payload size exceeded maximum allowed payload size "
                                      f"({MAX_RESPONSE_BYTES} bytes)."}


class Launcher(Protocol):
    """How a backend runs the runtime of one execution environment."""

    @property
    def enforces_memory(self) -> bool: ...  # the memory size is a hard limit (else judged from the peak)
    def start(self, api: RuntimeApi) -> IO[bytes]: ...  # the runtime's output
    def wait_running(self) -> float: ...  # when the runtime itself started (after a container's own start)
    def exit_code(self) -> int | None: ...  # None while it runs
    def kill(self) -> None: ...
    def max_memory_mb(self) -> int: ...
    def out_of_memory(self) -> bool: ...


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": []}).encode()


def _error_type(body: bytes) -> str:
    try:
        return str(json.loads(body).get("errorType") or "Runtime.Unknown")
    except (ValueError, AttributeError, RecursionError):
        return "Runtime.Unknown"


#: The longest line of the function's output that is kept whole (CloudWatch Logs takes 256 KB per event);
#: a longer one is cut into lines of this length.
MAX_LINE_BYTES = 256 * 1024
#: The function's output kept for the invokes' results, at most: beyond it the oldest lines go (they were
#: echoed as they came), so a function that prints without end never fills the kit's memory.
MAX_KEPT_BYTES = 8 * 1024 * 1024


class _Output:
    """The runtime's output, read line by line on a thread: echoed as it comes, and kept (up to
    :data:`MAX_KEPT_BYTES`) for the invoke it belongs to."""

    def __init__(self, stream: IO[bytes], echo: Callable[[str], None] | None) -> None:
        self._stream = stream
        self._echo = echo
        self._lines: deque[str] = deque()
        self._dropped = 0  # lines let go from the front, so that marks keep counting every line
        self._kept_bytes = 0
        self._lock = threading.Lock()
        # Held from taking bytes out of the pipe until their lines are kept and echoed: with it, an empty pipe
        # means every byte written so far has been shown (the platform's END line never cuts into a line).
        self._reading = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="runtime-output", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        fd = self._stream.fileno()
        pending = b""
        while True:
            try:
                select.select([fd], [], [])  # (waits without the lock: since() may look meanwhile)
            except (OSError, ValueError):  # the pipe was closed on this side: the environment is gone
                break
            with self._reading:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    self._take(line)
                while len(pending) >= MAX_LINE_BYTES:  # a line that long is kept in pieces
                    self._take(pending[:MAX_LINE_BYTES])
                    pending = pending[MAX_LINE_BYTES:]
        with self._reading:
            if pending:
                self._take(pending)

    def _take(self, raw: bytes) -> None:
        for start in range(0, max(len(raw), 1), MAX_LINE_BYTES):
            line = raw[start:start + MAX_LINE_BYTES].decode("utf-8", errors="replace")
            with self._lock:
                self._lines.append(line)
                self._kept_bytes += len(line)
                while self._kept_bytes > MAX_KEPT_BYTES and self._lines:
                    self._kept_bytes -= len(self._lines.popleft())
                    self._dropped += 1
            if self._echo is not None:
                self._echo(line)

    def mark(self) -> int:
        with self._lock:
            return self._dropped + len(self._lines)

    def since(self, mark: int, settle_s: float = 0.0) -> list[str]:
        """The lines since ``mark``, once the pipe has nothing more to give (bytes written before the runtime
        answered are already in it) and every line taken from it has been shown."""
        deadline = time.perf_counter() + 0.5
        quiet_since = time.perf_counter()
        while time.perf_counter() < deadline:
            try:
                with self._reading:
                    waiting = int.from_bytes(fcntl.ioctl(self._stream.fileno(), termios.FIONREAD, b"\0\0\0\0"),
                                             "little")
            except (OSError, ValueError):
                break
            if waiting:
                quiet_since = time.perf_counter()
            elif time.perf_counter() - quiet_since >= settle_s:
                break
            time.sleep(0.001)
        with self._lock:
            return list(itertools.islice(self._lines, max(0, mark - self._dropped), None))

    def join(self) -> None:
        self._thread.join(timeout=2)


class ExecutionEnvironment:
    """One execution environment of ``function``: started on the first invoke, reused by the next (warm).

    ``log`` gets Lambda's platform lines (``START``, ``END``, ``REPORT``, ``INIT_REPORT``) and, with ``echo``, the
    function's output, in the order Lambda writes them to its log stream.
    """

    def __init__(self, function: Function, launcher: Launcher, timeout_s: float,
                 log: Callable[[str], None] = print, echo: bool = True, output_settle_s: float = 0.0) -> None:
        self.function = function
        self.launcher = launcher
        self.timeout_s = timeout_s
        self.log = log
        self._echo = echo
        self._settle_s = output_settle_s
        self._api: RuntimeApi | None = None
        self._output: _Output | None = None
        self._started_at = 0.0

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function.stack}-{self.function.logical_id}"

    # -- the environment ----------------------------------------------------------------------------------
    def _start(self) -> RuntimeApi:
        """Start the runtime; its init is timed from when the runtime runs (a container takes a moment first)."""
        api = RuntimeApi()
        stream = self.launcher.start(api)
        self._api = api
        self._output = _Output(stream, self.log if self._echo else None)
        self._started_at = self.launcher.wait_running()
        return api

    def _await_init(self, api: RuntimeApi, limit_s: float) -> tuple[str, Outcome | None]:
        """``("ready"|"error"|"exited"|"timeout", outcome)``: how the init ended within ``limit_s``."""
        deadline = self._started_at + limit_s
        while api.first_poll_at is None:
            try:
                outcome = api.outcomes.get(timeout=0.01)
            except queue.Empty:
                if self.launcher.exit_code() is not None:
                    try:  # an init error is posted just before the process exits
                        return "error", api.outcomes.get(timeout=0.2)
                    except queue.Empty:
                        return "exited", None
                if time.perf_counter() >= deadline:
                    return "timeout", None
                continue
            if outcome.kind == "init_error":
                return "error", outcome
        return "ready", None

    def _init_report(self, phase: str, status: str, started: float, error_type: str = "") -> None:
        error = f"\tError Type: {error_type}" if error_type else ""
        self.log(f"INIT_REPORT Init Duration: {(time.perf_counter() - started) * 1000:.2f} ms\tPhase: {phase}\t"
                 f"Status: {status}{error}")

    def close(self) -> None:
        """Discard the environment: the runtime first (so that it never sees the API go), then the API."""
        self.launcher.kill()
        if self._output is not None:
            self._output.join()
            self._output = None
        if self._api is not None:
            self._api.stop()
            self._api = None

    # -- one invoke -------------------------------------------------------------------------------------------
    def invoke(self, payload: bytes) -> Invocation:
        request_id = str(uuid.uuid4())
        init_ms: float | None = None
        api = self._api
        if api is None:  # cold: the init phase, 10 s of its own
            api = self._start()
            state, outcome = self._await_init(api, INIT_TIMEOUT_S)
            if state == "ready":
                assert api.first_poll_at is not None
                init_ms = (api.first_poll_at - self._started_at) * 1000
            else:
                failed_type = _error_type(outcome.body) if outcome else "Runtime.ExitError" if state == "exited" \
                    else ""
                self._init_report("init", "timeout" if state == "timeout" else "error", self._started_at,
                                  failed_type)
                self.close()
                return self._invoke_with_init(request_id, payload)
        return self._run(api, request_id, payload, started=time.perf_counter(), init_ms=init_ms)

    def _invoke_with_init(self, request_id: str, payload: bytes) -> Invocation:
        """The init retried within the first invoke, which the function's timeout covers whole."""
        api = self._start()
        started = self._started_at
        state, outcome = self._await_init(api, self.timeout_s)
        if state != "ready":
            if state == "timeout":
                body = error_body("Sandbox.Timedout", f"Task timed out after {self.timeout_s:.2f} seconds")
            elif outcome is not None:
                body = outcome.body
            else:
                body = self._exit_body(request_id)
            error_type = "" if state == "timeout" else _error_type(body)
            self._init_report("invoke", "timeout" if state == "timeout" else "error", started, error_type)
            self.log(f"START RequestId: {request_id} Version: $LATEST")
            return self._finish(request_id, False, body, started, None, "timeout" if state == "timeout" else "error",
                                error_type, mark=self._output.mark() if self._output else 0, discard=True)
        self._init_report("invoke", "success", started)
        return self._run(api, request_id, payload, started=started, init_ms=None)

    def _run(self, api: RuntimeApi, request_id: str, payload: bytes, *, started: float,
             init_ms: float | None) -> Invocation:
        """The invoke proper: its duration and its timeout count from ``started`` (now, or the start of an init
        retried within it)."""
        assert self._output is not None
        self.log(f"START RequestId: {request_id} Version: $LATEST")
        mark = self._output.mark()
        deadline = started + self.timeout_s
        api.submit(payload, deadline - time.perf_counter(), self.function_arn, request_id=request_id)
        outcome = self._wait(api, request_id, deadline)
        if outcome.kind == "timeout":
            body = error_body("Sandbox.Timedout", f"Task timed out after {self.timeout_s:.2f} seconds")
            return self._finish(request_id, False, body, started, init_ms, "timeout", "", mark, discard=True)
        if outcome.kind == "exited":
            oom = self.launcher.out_of_memory()
            body = error_body("Runtime.OutOfMemory", f"RequestId: {request_id} Error: Runtime exited with error: "
                                                     "signal: killed") if oom else self._exit_body(request_id)
            return self._finish(request_id, False, body, started, init_ms, "error", _error_type(body), mark,
                                discard=True, oom=oom)
        if outcome.kind == "init_error":
            return self._finish(request_id, False, outcome.body, started, init_ms, "error",
                                _error_type(outcome.body), mark, discard=True)
        if outcome.too_large:
            body = json.dumps(RESPONSE_TOO_LARGE).encode()
            return self._finish(request_id, False, body, started, init_ms, "error", RESPONSE_TOO_LARGE["errorType"],
                                mark)
        # A handler's exception is the function's answer, not a failure of the environment: no Status.
        return self._finish(request_id, outcome.kind == "response", outcome.body, started, init_ms, "", "", mark)

    def _exit_body(self, request_id: str) -> bytes:
        code = self.launcher.exit_code()
        return error_body("Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited with error: "
                                               f"exit status {code}")

    def _finish(self, request_id: str, ok: bool, body: bytes, started: float, init_ms: float | None, status: str,
                error_type: str, mark: int, *, discard: bool = False, oom: bool = False) -> Invocation:
        finished = time.perf_counter()
        used = self.function.memory_mb if oom else self.launcher.max_memory_mb()
        if not oom and not self.launcher.enforces_memory and used > self.function.memory_mb:
            # No hard limit here: a peak over the memory size is the kill Lambda would have made.
            body = error_body("Runtime.OutOfMemory", f"RequestId: {request_id} Error: Runtime exited with error: "
                                                     f"signal: killed (its peak, {used} MB, is over its memory size, "
                                                     f"{self.function.memory_mb} MB: Lambda would have stopped it)")
            ok, status, error_type, discard, oom = False, "error", "Runtime.OutOfMemory", True, True
            used = self.function.memory_mb
        logs = self._output.since(mark, self._settle_s) if self._output is not None else []
        if discard:
            self.close()
        duration_ms = (finished - started) * 1000
        report = {"request_id": request_id, "duration_ms": round(duration_ms, 2),
                  "billed_duration_ms": max(1, round(duration_ms + 0.4999)), "memory_size_mb": self.function.memory_mb,
                  "max_memory_used_mb": used, "init_duration_ms": round(init_ms, 2) if init_ms is not None else None,
                  "status": status or None, "error_type": error_type or None}
        line = (f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
                f"Billed Duration: {report['billed_duration_ms']} ms\tMemory Size: {self.function.memory_mb} MB\t"
                f"Max Memory Used: {report['max_memory_used_mb']} MB")
        if init_ms is not None:
            line += f"\tInit Duration: {init_ms:.2f} ms"
        if status:
            line += f"\tStatus: {status}" + (f"\tError Type: {error_type}" if error_type else "")
        self.log(f"END RequestId: {request_id}")
        self.log(line)
        return Invocation(request_id, ok, body, duration_ms, init_ms, report["max_memory_used_mb"], logs=logs,
                          report=report)

    def _wait(self, api: RuntimeApi, request_id: str, deadline: float) -> Outcome:
        """The outcome of ``request_id`` by ``deadline``."""
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return Outcome("timeout", request_id)
            try:
                outcome = api.outcomes.get(timeout=min(remaining, 0.05))
            except queue.Empty:
                code = self.launcher.exit_code()
                if code is None:
                    continue
                try:  # an init error is posted just before the process exits
                    return api.outcomes.get(timeout=0.2)
                except queue.Empty:
                    return Outcome("exited", request_id, str(code).encode())
            if outcome.kind == "init_error" or outcome.request_id == request_id:
                return outcome
