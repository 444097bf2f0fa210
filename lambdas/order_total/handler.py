"""Prices an order: validates it with pydantic (my_layer), sums it in Decimal (another_layer), and reads when it
was placed with dateutil's parser, a dependency of this function alone (lambdas/order_total/requirements.txt)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from another_layer import order_total
from dateutil import parser as dates
from my_layer import BadEvent, error_result, parse_event
from pydantic import BaseModel, Field, field_validator


class Line(BaseModel):
    sku: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(gt=0, le=10_000)]
    unit_price: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


class Order(BaseModel):
    order_id: Annotated[str, Field(min_length=1, max_length=64)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    lines: Annotated[list[Line], Field(min_length=1, max_length=500)]
    placed_at: Annotated[str | None, Field(max_length=64)] = None  # any date format dateutil reads

    @field_validator("placed_at")
    @classmethod
    def readable_date(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                dates.parse(value)
            except (ValueError, OverflowError) as error:
                raise ValueError(f"not a date dateutil can read ({error})") from None
        return value


def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        order = parse_event(Order, event)
    except BadEvent as error:
        return error_result(error)
    total = order_total((line.quantity, line.unit_price) for line in order.lines)
    result = {
        "ok": True,
        "order_id": order.order_id,
        "currency": order.currency,
        "lines": len(order.lines),
        "total": str(total),
    }
    if order.placed_at is not None:
        result["placed_on"] = dates.parse(order.placed_at).strftime("%A %d %B %Y")
    return result
