"""Events for a local invoke: read and checked before anything runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from layerkit.errors import InvokeError

#: Lambda's limit for a synchronous invoke's payload.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


def read_events(sources: list[str] | None) -> list[bytes]:
    """The JSON payload of each ``--event`` (a file, or ``-`` for stdin); ``{}`` when there is none."""
    if not sources:
        return [b"{}"]
    events = []
    for source in sources:
        name = "standard input" if source == "-" else f"event file {source}"
        try:
            data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        except OSError as exc:
            raise InvokeError(f"cannot read {name}: {exc.strerror}; pass an existing JSON file") from None
        if len(data) > MAX_PAYLOAD_BYTES:
            raise InvokeError(f"{name} is {len(data)} bytes; Lambda accepts at most {MAX_PAYLOAD_BYTES} bytes")
        try:
            json.loads(data)
        except UnicodeDecodeError:
            raise InvokeError(f"{name} is not UTF-8 text; an event must be a JSON document") from None
        except json.JSONDecodeError as exc:
            raise InvokeError(
                f"{name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; "
                "fix the file (an event is one JSON document, e.g. {\"key\": \"value\"})"
            ) from None
        events.append(data)
    return events
