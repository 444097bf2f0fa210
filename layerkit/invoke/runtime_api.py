"""A local Lambda Runtime API (``/2018-06-01/runtime/...``) for the official runtime interface client.

The client long-polls ``invocation/next``, then posts ``response`` or ``error``; a failed import posts
``init/error``. Every outcome lands in one queue that the invoking side reads.

It serves on 127.0.0.1 of this machine (:meth:`RuntimeApi.listen_here`, for a container on the host network), or
on a listening socket made inside the sandbox's own network namespace and handed over (:meth:`RuntimeApi.serve`):
a socket stays bound in the namespace it was made in, so the function reaches the Runtime API on its own
loopback and nothing of this machine's.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from layerkit.rules.limits import MAX_RESPONSE_BYTES

PREFIX = "/2018-06-01/runtime"
_PIECE = 64 * 1024


@dataclass
class Outcome:
    """What happened to an invocation: ``response``, ``error``, ``init_error`` or ``exited``."""

    kind: str
    request_id: str = ""
    body: bytes = b""
    at: float = field(default_factory=time.perf_counter)
    too_large: bool = False  # the body was over Lambda's limit: read and dropped, never kept


@dataclass
class Pending:
    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # The client's connection dies with its environment (a timeout kill, the end of a session), or the function
        # sends what is not HTTP: its connection is dropped, and nothing of it reaches the kit's output.
        del request, client_address


class RuntimeApi:
    """Serves one execution environment on 127.0.0.1, on a free port."""

    def __init__(self) -> None:
        self.outcomes: queue.Queue[Outcome] = queue.Queue()
        self._next: queue.Queue[Pending | None] = queue.Queue()
        self.first_poll_at: float | None = None  # when the function finished its init and asked for work
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the client reuses one connection

            def setup(self) -> None:
                super().setup()
                # Without it, each small response waits for Nagle's algorithm: ~40-80 ms per warm invoke.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404, {"errorMessage": f"unknown path {self.path}"})
                if api.first_poll_at is None:
                    api.first_poll_at = time.perf_counter()
                pending = api._next.get()
                if pending is None:  # shutting down
                    return self._reply(410, {"errorMessage": "environment shutting down"})
                self.send_response(200)
                for header, value in (
                    ("Lambda-Runtime-Aws-Request-Id", pending.request_id),
                    ("Lambda-Runtime-Deadline-Ms", str(pending.deadline_ms)),
                    ("Lambda-Runtime-Invoked-Function-Arn", pending.function_arn),
                    ("Lambda-Runtime-Trace-Id", pending.trace_id),
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(pending.payload))),
                ):
                    self.send_header(header, value)
                self.end_headers()
                self.wfile.write(pending.payload)
                return None

            def do_POST(self) -> None:
                body, too_large = self._body()
                parts = self.path.removeprefix(PREFIX).strip("/").split("/")
                if parts == ["init", "error"]:
                    api.outcomes.put(Outcome("init_error", body=body, too_large=too_large))
                elif len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    api.outcomes.put(Outcome(parts[2], request_id=parts[1], body=body, too_large=too_large))
                else:
                    return self._reply(404, {"errorMessage": f"unknown path {self.path}"})
                return self._reply(202, {"status": "OK"})

            def _body(self) -> tuple[bytes, bool]:
                """The posted body, and whether it was over Lambda's limit: past the limit it is read (the
                connection stays usable) and dropped, so the kit's memory never holds more than the limit."""
                kept = bytearray()
                over = False

                def take(size: int) -> None:
                    nonlocal over
                    while size > 0:
                        piece = self.rfile.read(min(size, _PIECE))
                        if not piece:
                            raise ConnectionError("the runtime closed the connection mid-body")
                        size -= len(piece)
                        if not over and len(kept) + len(piece) <= MAX_RESPONSE_BYTES:
                            kept.extend(piece)
                        else:
                            over = True
                            kept.clear()

                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    while size := int(self.rfile.readline(64).strip().split(b";")[0] or b"0", 16):
                        take(size)
                        self.rfile.readline(64)
                    while self.rfile.readline(8192).strip():  # trailers
                        pass
                else:
                    take(int(self.headers.get("Content-Length") or 0))
                return bytes(kept), over

            def _reply(self, status: int, payload: dict[str, str]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = _QuietServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self._thread = threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True)
        self._serving = False

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def listen_here(self) -> str:
        """Serve on a free port of this machine's 127.0.0.1; the address (``127.0.0.1:PORT``)."""
        self._server.server_bind()
        self._server.server_activate()
        self._begin()
        return self.address

    def serve(self, listener: socket.socket) -> None:
        """Serve on ``listener``, a listening TCP socket (made in the sandbox's network namespace)."""
        self._server.socket.close()
        self._server.socket = listener
        self._server.server_address = listener.getsockname()
        self._begin()

    def _begin(self) -> None:
        self._serving = True
        self._thread.start()

    def submit(self, payload: bytes, timeout_s: float, function_arn: str, request_id: str | None = None) -> Pending:
        pending = Pending(
            request_id=request_id or str(uuid.uuid4()),
            payload=payload,
            deadline_ms=int((time.time() + timeout_s) * 1000),
            function_arn=function_arn,
            trace_id=f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
        )
        self._next.put(pending)
        return pending

    def stop(self) -> None:
        """Stop serving (the runtime is gone by now: a poll still waiting is answered 410, to nobody)."""
        self._next.put(None)
        if self._serving:
            self._server.shutdown()
        self._server.server_close()
