"""A construct's option that is one of a few names (a builder, a sharing mode): given as an argument or as a
context key, and refused in one line that names the choices and both ways of giving one."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from layerkit.core.errors import LayerkitError

Choice = TypeVar("Choice", bound=StrEnum)


def one_of(kind: type[Choice], value: object, *, where: str, argument: str, context_key: str) -> Choice:
    """``value`` (the argument, else the context key's value, else the default: the caller's order) as a member of
    ``kind``."""
    try:
        return kind(value)
    except ValueError:
        raise LayerkitError(
            f"{where}: unknown {argument} {value!r}; use one of {', '.join(repr(c.value) for c in kind)} "
            f"(argument {argument}= or -c {context_key}=...)"
        ) from None
