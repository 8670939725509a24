"""Request JSON: numbers keep their exact value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cds_service.exact_json import loads_exact


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
