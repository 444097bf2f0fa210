"""What one local invoke gives back, whichever backend ran it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Invocation:
    """The response (or Lambda's error JSON), the duration, the init duration of a cold start, the memory."""

    request_id: str
    ok: bool
    body: bytes
    duration_ms: float
    init_ms: float | None
    max_memory_mb: int

    @property
    def payload(self) -> Any:
        return json.loads(self.body) if self.body else None
