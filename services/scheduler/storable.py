"""Make a refused input's record storable: Postgres text holds no NUL and JSON no NaN, and the record of
an input refused for holding them must not fail the same way."""

from __future__ import annotations

import math
from typing import TypeVar

T = TypeVar("T")

REPLACEMENT = "\ufffd"


def _text(value: str) -> str:
    # NUL, and lone surrogates (which UTF-8 cannot encode), become U+FFFD.
    cleaned = value.replace("\x00", REPLACEMENT)
    if cleaned.isascii():
        return cleaned
    return "".join(REPLACEMENT if 0xD800 <= ord(char) <= 0xDFFF else char for char in cleaned)


def storable(value: T) -> T:
    """The value with every string made storable and every non-finite float replaced by None."""
    if isinstance(value, str):
        return _text(value)  # type: ignore[return-value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # type: ignore[return-value]
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]  # type: ignore[return-value]
    return value
