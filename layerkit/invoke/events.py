"""Events for a local invoke: read and checked before anything runs, as strictly as Lambda reads a payload.

Lambda takes a JSON document in UTF-8: no byte order mark, no other encoding (``json.loads`` would quietly accept
UTF-16), no ``NaN`` or ``Infinity`` (JSON has neither), and no nesting deeper than a parser can take. Each of
those stops the invoke in one line, before any environment starts.
"""

from __future__ import annotations

import codecs
import json
import sys
from pathlib import Path

from layerkit.core.errors import InvokeError
from layerkit.rules.limits import MAX_PAYLOAD_BYTES

_BOMS = {codecs.BOM_UTF8: "UTF-8", codecs.BOM_UTF16_LE: "UTF-16", codecs.BOM_UTF16_BE: "UTF-16",
         codecs.BOM_UTF32_LE: "UTF-32", codecs.BOM_UTF32_BE: "UTF-32"}


def _no_constant(name: str) -> None:
    raise ValueError(name)


def check_event(data: bytes, name: str = "the event") -> None:
    """Raise :class:`InvokeError` for a payload Lambda would refuse."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise InvokeError(f"{name} is {len(data)} bytes; Lambda accepts at most {MAX_PAYLOAD_BYTES} bytes")
    for bom, encoding in sorted(_BOMS.items(), key=lambda item: -len(item[0])):
        if data.startswith(bom):
            raise InvokeError(f"{name} starts with a {encoding} byte order mark; an event is JSON in UTF-8 without "
                              "one: save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvokeError(f"{name} is not UTF-8 text; an event must be a JSON document in UTF-8") from None
    try:
        json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InvokeError(f"{name} is nested deeper than a JSON parser can take; flatten it") from None
    except json.JSONDecodeError as exc:
        raise InvokeError(
            f"{name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}; "
            "fix the file (an event is one JSON document, e.g. {\"key\": \"value\"})"
        ) from None
    except ValueError as exc:  # NaN, Infinity, -Infinity
        raise InvokeError(f"{name} holds {exc}, a number JSON does not have; use null or a string") from None


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
        check_event(data, name)
        events.append(data)
    return events
