"""One Lambda execution environment, whichever backend runs it: the kit's Runtime API on 127.0.0.1, request IDs,
timeouts, REPORT figures and Lambda's error shapes are the same for the sandbox and for a container.

A backend only launches the runtime (``awslambdaric``, pointed at the Runtime API by ``AWS_LAMBDA_RUNTIME_API``),
kills it, and measures its memory (:class:`Launcher`). The environment is started by the first invoke and reused
by the next ones (warm), as Lambda does; a timeout, a crash, an out-of-memory kill or a failed init discards it,
and the next invoke starts a new one (cold). An event is submitted once: whatever fails, the handler never runs
twice for it.
"""

from __future__ import annotations

import json
import queue
import time
from typing import Protocol

from layerkit.assembly import Function
from layerkit.invoke.result import Invocation
from layerkit.invoke.runtime_api import Outcome, RuntimeApi

#: Lambda gives a function's init phase 10 s of its own; the invoke's timeout counts from then on.
INIT_TIMEOUT_S = 10.0


class Launcher(Protocol):
    """How a backend runs the runtime of one execution environment."""

    #: Seconds the backend itself may take to start (a container), on top of the function's init.
    startup_allowance_s: float

    def start(self, runtime_api: str) -> None: ...
    def exit_code(self) -> int | None: ...  # None while it runs
    def kill(self) -> None: ...
    def max_memory_mb(self) -> int: ...
    def out_of_memory(self) -> bool: ...


def error_body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": []}).encode()


class ExecutionEnvironment:
    """One execution environment of ``function``: started on the first invoke, reused by the next (warm)."""

    def __init__(self, function: Function, launcher: Launcher, timeout_s: float) -> None:
        self.function = function
        self.launcher = launcher
        self.timeout_s = timeout_s
        self._api: RuntimeApi | None = None
        self._started_at = 0.0
        self._max_memory_mb = 1

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:local:000000000000:function:{self.function.stack}-{self.function.logical_id}"

    def _start(self) -> RuntimeApi:
        api = RuntimeApi()
        api.start()
        self._api = api
        self._started_at = time.perf_counter()
        self._max_memory_mb = 1
        self.launcher.start(api.address)
        return api

    def invoke(self, payload: bytes) -> Invocation:
        cold = self._api is None
        api = self._start() if self._api is None else self._api
        pending = api.submit(payload, self.timeout_s, self.function_arn)
        submitted = time.perf_counter()
        outcome = self._wait(api, pending.request_id, submitted)
        finished = time.perf_counter()
        init_ms = None
        if cold and api.first_poll_at is not None:
            init_ms = (api.first_poll_at - self._started_at) * 1000
            submitted = max(submitted, api.first_poll_at)
        body = outcome.body
        if outcome.kind == "timeout":
            body = error_body("Sandbox.Timedout", f"Task timed out after {self.timeout_s:.2f} seconds")
        elif outcome.kind == "exited":
            code = outcome.body.decode()
            if self.launcher.out_of_memory():
                self._max_memory_mb = self.function.memory_mb
                body = error_body("Runtime.OutOfMemory", f"RequestId: {pending.request_id} Error: Runtime exited "
                                                         "with error: signal: killed")
            else:
                body = error_body("Runtime.ExitError", f"RequestId: {pending.request_id} Error: Runtime exited "
                                                       f"with error: exit status {code}")
        if outcome.kind not in ("exited",):
            self._max_memory_mb = max(self._max_memory_mb, self.launcher.max_memory_mb())
        if outcome.kind in ("timeout", "exited", "init_error"):
            self.close()  # Lambda discards such an environment; the next invoke starts cold
        return Invocation(pending.request_id, outcome.kind == "response", body, (finished - submitted) * 1000,
                          init_ms, self._max_memory_mb)

    def _wait(self, api: RuntimeApi, request_id: str, submitted: float) -> Outcome:
        """The outcome of ``request_id``; the timeout counts from when the function took the event."""
        while True:
            took_event = api.first_poll_at
            deadline = (submitted + INIT_TIMEOUT_S + self.launcher.startup_allowance_s if took_event is None
                        else max(submitted, took_event) + self.timeout_s)
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

    def close(self) -> None:
        self.launcher.kill()
        if self._api is not None:
            self._api.stop()
            self._api = None
