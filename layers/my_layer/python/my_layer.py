"""Event parsing shared by the example functions: validate with pydantic, answer mistakes as data.

A Lambda function that raises on bad input gives its caller a stack trace and counts as an error; these
helpers turn a malformed event into a structured result the caller can act on.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

__all__ = ["MAX_EVENT_BYTES", "BadEvent", "error_result", "parse_event"]

#: Events larger than this are refused before parsing (Lambda's synchronous payload limit is 6 MB).
MAX_EVENT_BYTES = 256 * 1024

Model = TypeVar("Model", bound=BaseModel)


class BadEvent(Exception):
    """An event the function cannot work with; ``details`` lists each problem with its location."""

    def __init__(self, kind: str, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.details = details or []


def parse_event(model: type[Model], event: Any) -> Model:
    """Validate ``event`` as ``model``. An API Gateway proxy event's JSON ``body`` is unwrapped first."""
    if isinstance(event, dict) and "body" in event:
        body = event["body"]
        if not isinstance(body, str):
            raise BadEvent("InvalidBody", "the event's 'body' must be a JSON string")
        if len(body.encode()) > MAX_EVENT_BYTES:
            raise BadEvent("PayloadTooLarge", f"the body is larger than {MAX_EVENT_BYTES} bytes")
        try:
            event = json.loads(body)
        except json.JSONDecodeError as exc:
            raise BadEvent("InvalidJson", f"the event's 'body' is not JSON: {exc.msg} at position {exc.pos}") from None
    elif len(json.dumps(event, default=str).encode()) > MAX_EVENT_BYTES:
        raise BadEvent("PayloadTooLarge", f"the event is larger than {MAX_EVENT_BYTES} bytes")
    if not isinstance(event, dict):
        raise BadEvent("InvalidEvent", f"the event must be a JSON object, not {type(event).__name__}")
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        details = [
            {"field": ".".join(str(part) for part in err["loc"]) or "(event)", "problem": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
        raise BadEvent("ValidationError", f"{len(details)} invalid field(s) in the event", details) from None


def error_result(error: BadEvent) -> dict[str, Any]:
    """The structured answer to a malformed event."""
    return {"ok": False, "error": {"type": error.kind, "message": error.message, "details": error.details}}
