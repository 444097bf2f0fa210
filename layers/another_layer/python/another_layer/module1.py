"""Money arithmetic in Decimal: floats would make 0.1 + 0.2 an order total nobody ordered."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")


def line_total(quantity: int, unit_price: Decimal) -> Decimal:
    """Price of one order line, rounded to the cent (banker's rounding, as accounting does)."""
    return (unit_price * quantity).quantize(CENT, rounding=ROUND_HALF_EVEN)


def order_total(lines: Iterable[tuple[int, Decimal]]) -> Decimal:
    """Sum of the line totals of ``(quantity, unit_price)`` pairs."""
    return sum((line_total(q, p) for q, p in lines), Decimal("0.00"))
