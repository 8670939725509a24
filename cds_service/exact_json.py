"""Parsing JSON from EHRs and FHIR servers without losing a number's exact value.

The rules compare lab values with thresholds in exact decimal arithmetic, so every JSON number
with a fraction or an exponent is read as the Decimal it spells ("2.50" stays
``Decimal('2.50')``), integers as int, and NaN or Infinity are refused. msgspec does this in C
with one ``Decimal`` call per number: about half the cost of ``json.loads(parse_float=Decimal)``.
A hook request body is parsed once per call, whole; nothing decoded is kept after the call.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec

_DECODER = msgspec.json.Decoder(float_hook=Decimal)  # thread-safe, built once per process


def loads_exact(raw: bytes) -> Any:
    """JSON text (UTF-8) as Python values with exact numbers.

    Raises UnicodeDecodeError for text that is not UTF-8, msgspec.DecodeError (a ValueError)
    for text that is not JSON, and RecursionError for JSON nested too deeply."""
    return _DECODER.decode(raw)


def why_invalid(raw: bytes, error: ValueError) -> str:
    """What is wrong with JSON text that ``loads_exact`` refused, for the client: the standard
    library's message names the line and column (and NaN or Infinity as such); msgspec's
    names a byte offset. Only on the error path, so its cost does not matter."""
    try:  # str, not bytes: given bytes, json.loads would skip a byte order mark
        json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as described:
        return str(described)
    return str(error)  # the standard library accepts it (e.g. a lone surrogate); msgspec not


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
