"""Request JSON: numbers keep their exact value; the prefetch values are decoded when read."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds_service.exact_json import LazyJsonObject, UnreadableJson, loads_exact, loads_exact_lazily


def test_numbers_keep_the_value_they_spell() -> None:
    text = b'{"a": 2.50, "b": 0.1234567890123456789, "c": 1e-400, "d": 123456789012345678901234}'
    assert loads_exact(text) == {
        "a": Decimal("2.50"),
        "b": Decimal("0.1234567890123456789"),
        "c": Decimal("1E-400"),
        "d": 123456789012345678901234,
    }
    assert str(loads_exact(text)["a"]) == "2.50"  # the precision the EHR sent is kept


@pytest.mark.parametrize("text", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}'])
def test_nan_and_infinity_are_refused(text: bytes) -> None:
    with pytest.raises(ValueError):
        loads_exact(text)


# -- the prefetch read lazily: the same values and the same errors as loads_exact ---------------

MEMBERS = ("hook", "context", "prefetch")


def lazily(raw: bytes) -> Any:
    return loads_exact_lazily(raw, MEMBERS, "prefetch")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(prefetch=st.dictionaries(st.text(), JSON_VALUES, max_size=5), context=JSON_VALUES)
def test_values_read_lazily_are_those_loads_exact_reads(
    prefetch: dict[str, Any], context: Any
) -> None:
    raw = json.dumps({"hook": "h", "context": context, "prefetch": prefetch}).encode()
    whole, lazy = loads_exact(raw), lazily(raw)
    assert isinstance(lazy["prefetch"], LazyJsonObject)
    assert {k: lazy["prefetch"][k] for k in lazy["prefetch"]} == whole["prefetch"]
    assert {k: v for k, v in lazy.items() if k != "prefetch"} == {
        k: v for k, v in whole.items() if k != "prefetch"
    }


def test_members_not_named_are_checked_as_json_but_left_out() -> None:
    raw = b'{"hook": "h", "extension": {"n": ' + b"1" * 4301 + b"}}"
    assert lazily(raw) == {"hook": "h"}
    with pytest.raises(ValueError):
        lazily(b'{"hook": "h", "extension": [1,]}')


def test_numbers_read_lazily_keep_the_value_they_spell() -> None:
    lazy = lazily(b'{"prefetch": {"k": {"a": 2.50, "c": 1e-400}}}')
    assert lazy["prefetch"]["k"] == {"a": Decimal("2.50"), "c": Decimal("1E-400")}
    assert str(lazy["prefetch"]["k"]["a"]) == "2.50"


def test_keys_are_known_without_decoding_their_values() -> None:
    """An integer of 4,301 digits is JSON but not decodable: it fails only when it is read."""
    raw = b'{"prefetch": {"unread": ' + b"1" * 4301 + b', "read": null}}'
    with pytest.raises(ValueError):
        loads_exact(raw)
    prefetch = lazily(raw)["prefetch"]
    assert "unread" in prefetch
    assert sorted(prefetch) == ["read", "unread"]
    assert len(prefetch) == 2
    assert prefetch["read"] is None
    with pytest.raises(UnreadableJson):
        prefetch["unread"]


@pytest.mark.parametrize(
    "value",
    [
        b'"\xff"',
        b'"\xc0\xaf"',  # an overlong encoding
        b'"\xed\xa0\x80"',  # a surrogate, UTF-8 encoded
        b'"\\ud800"',
        b'"\\ud800x"',
        b'"\\udc00"',
        b'"\\ud800\\u0041"',
        b'"\\x"',
        b'"a\x01b"',
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"01",
        b"1.",
        b".5",
        b"+1",
        b"1e",
        b"-",
        b"0x10",
        b"tru",
        b"[1,]",
        b"'a'",
        b"[" * 1000 + b"]" * 1000,
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_malformed_json_in_the_lazy_member_fails_as_loads_exact_fails(value: bytes) -> None:
    raw = b'{"hook": "h", "prefetch": {"k": ' + value + b"}}"
    with pytest.raises((ValueError, RecursionError)) as whole:
        loads_exact(raw)
    with pytest.raises((ValueError, RecursionError)) as lazy:
        lazily(raw)
    assert type(lazy.value) is type(whole.value) or (  # UTF-8: the same class the route reads
        isinstance(lazy.value, UnicodeDecodeError) and "UTF-8" in str(whole.value)
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"[]",
        b"null",
        b'"x"',
        b"5",
        b'{"prefetch": []}',
        b'{"prefetch": "x"}',
        b'{"prefetch": null}',
    ],
)
def test_what_is_not_an_object_comes_out_as_loads_exact_reads_it(raw: bytes) -> None:
    """Left for the envelope's model to refuse, with its own message."""
    assert lazily(raw) == loads_exact(raw)
