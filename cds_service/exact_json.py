"""Parsing JSON from EHRs and FHIR servers without losing a number's exact value.

The rules compare lab values with thresholds in exact decimal arithmetic, so every JSON number
with a fraction or an exponent is read as the Decimal it spells ("2.50" stays
``Decimal('2.50')``), integers as int, and NaN or Infinity are refused. msgspec does this in C
with one ``Decimal`` call per number: about half the cost of ``json.loads(parse_float=Decimal)``.
Nothing decoded is kept after the call.

A hook request's prefetch is most of its body and, for most calls, mostly unread (a lab result
of a patient who takes no ixazomib is decided from the medication list): ``loads_exact_lazily``
checks the whole body as JSON but leaves the values of one member (``prefetch``) as JSON text,
each decoded, with the same exact numbers, only when it is read (``LazyJsonObject``). On a
130 KB lab-result body (the quietest of several runs on the shared machine): 0.42 ms decoded
whole; 0.08 ms with the prefetch values left as text, 0.16 ms with the medication list read,
0.50 ms with every key read (cutting the values out first is the price of reading less).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from functools import cache
from typing import Any

import msgspec

_DECODER = msgspec.json.Decoder(float_hook=Decimal)  # thread-safe, built once per process


class UnreadableJson(ValueError):
    """A value of a ``LazyJsonObject`` that is well-formed JSON but cannot be decoded."""


def loads_exact(raw: bytes) -> Any:
    """JSON text (UTF-8) as Python values with exact numbers.

    Raises UnicodeDecodeError for text that is not UTF-8, msgspec.DecodeError (a ValueError)
    for text that is not JSON, and RecursionError for JSON nested too deeply."""
    return _DECODER.decode(raw)


def loads_exact_lazily(raw: bytes, members: tuple[str, ...], lazy: str) -> Any:
    """``loads_exact`` of a JSON object, read in one pass, that decodes only ``members``, and
    of those ``lazy`` (when an object) only as far as its keys: it comes out as a
    ``LazyJsonObject`` whose values stay JSON text until read. Other members are checked as
    JSON and left out (no one reads them). Text that is not such an object (not an object, or
    ``lazy`` neither an object nor null) comes out as ``loads_exact`` reads it.

    The same errors, for the same texts, as ``loads_exact``: msgspec checks the JSON text it
    skips (its structure, strings and escapes, numbers, nesting depth) but not that the bytes of
    a string are UTF-8, so the whole text is checked for that first (50 us for 1 MB). What the
    skip lets through is only what is valid JSON but not decodable, an integer of more than
    4,300 digits: refused when its value is read (``UnreadableJson``)."""
    raw.decode("utf-8")  # raises UnicodeDecodeError, as loads_exact does for such text
    try:
        split = _splitter(members, lazy).decode(raw)
    except msgspec.ValidationError:  # JSON, but not the object expected: as loads_exact reads it
        return _DECODER.decode(raw)
    document: dict[str, Any] = {}
    for name in members:
        value = getattr(split, name)
        if value is msgspec.UNSET:
            continue
        if name != lazy:
            document[name] = _DECODER.decode(value)
        else:
            document[name] = None if value is None else LazyJsonObject(value)
    return document


@cache
def _splitter(members: tuple[str, ...], lazy: str) -> msgspec.json.Decoder[Any]:
    """A decoder that cuts ``members`` out of an object as JSON text, ``lazy`` as a JSON text
    per key (one pass over the text; a member left out comes out as UNSET)."""
    fields: list[tuple[str, Any, Any]] = [
        (name, msgspec.Raw | msgspec.UnsetType, msgspec.UNSET) for name in members if name != lazy
    ]
    fields.append((lazy, dict[str, msgspec.Raw] | None | msgspec.UnsetType, msgspec.UNSET))
    return msgspec.json.Decoder(msgspec.defstruct("Members", fields))


class LazyJsonObject(Mapping[str, Any]):
    """A JSON object whose values are decoded (exact numbers) when first read, then kept.

    Values given as ``msgspec.Raw`` are JSON text already checked by the parser that cut them
    out (``loads_exact_lazily``); any other value is taken as decoded already (a request built
    in Python). Membership and iteration read only the keys. Reading a value that cannot be
    decoded raises ``UnreadableJson``."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        value = self._values[key]
        if isinstance(value, msgspec.Raw):
            try:
                value = _DECODER.decode(value)
            except (ValueError, RecursionError) as error:
                raise UnreadableJson(str(error)) from None
            self._values[key] = value
        return value

    def __contains__(self, key: object) -> bool:  # Mapping's would decode the value
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:  # patient data never goes to a log line or a traceback
        return f"LazyJsonObject(keys={sorted(self._values)})"


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
