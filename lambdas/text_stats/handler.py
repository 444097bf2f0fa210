"""Counts words in a text: validates the request with pydantic (my_layer), counts with another_layer."""

from __future__ import annotations

from typing import Annotated, Any

from another_layer import word_stats
from my_layer import BadEvent, error_result, parse_event
from pydantic import BaseModel, Field


class TextRequest(BaseModel):
    text: Annotated[str, Field(min_length=1, max_length=100_000)]
    top: Annotated[int, Field(ge=1, le=50)] = 3


def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        request = parse_event(TextRequest, event)
    except BadEvent as error:
        return error_result(error)
    return {"ok": True, **word_stats(request.text, top=request.top)}
