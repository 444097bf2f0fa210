"""What one local invoke gives back, whichever backend ran it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Invocation:
    """The response (or Lambda's error JSON), the duration, the init duration of a cold start, the memory; the
    function's output during the invoke (``logs``) and the figures of its ``REPORT`` line (``report``)."""

    request_id: str
    ok: bool
    body: bytes
    duration_ms: float
    init_ms: float | None
    max_memory_mb: int
    logs: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def payload(self) -> Any:
        """The response decoded from JSON (Lambda's error document when the invoke failed)."""
        return json.loads(self.body) if self.body else None

    @property
    def error(self) -> tuple[str, str] | None:
        """``(errorType, errorMessage)`` when the invoke failed, else None."""
        if self.ok:
            return None
        try:
            document = json.loads(self.body)
        except ValueError:
            return "Runtime.Unknown", self.body.decode(errors="replace")
        if not isinstance(document, dict):
            return "Runtime.Unknown", str(document)
        return str(document.get("errorType", "Runtime.Unknown")), str(document.get("errorMessage", ""))
