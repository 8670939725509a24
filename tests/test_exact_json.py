"""Request JSON: numbers keep their exact value, and a repeated prefetch is decoded once and
shared between calls, which is only safe because no call changes it."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.exact_json import loads_exact, loads_hook_request
from cds_service.fixtures import Scenario, load_scenarios

SCENARIOS = load_scenarios()


def _body(scenario: Scenario) -> bytes:
    request = scenario.cds_request(prefetch=True, fhir_server=None)
    request["hookInstance"] = str(uuid.uuid4())
    return json.dumps(request).encode()


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
    with pytest.raises(ValueError):
        loads_hook_request(text)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_a_hook_request_reads_as_one_plain_parse(scenario: Scenario) -> None:
    raw = _body(scenario)
    for _ in range(2):  # the second time the prefetch is found whole, by its text
        body = loads_hook_request(raw)
        assert body == loads_exact(raw)
        assert list(body) == list(loads_exact(raw))
        assert list(_prefetch(body) or []) == list(_prefetch(loads_exact(raw)) or [])


def test_a_prefetch_with_a_repeated_key_reads_as_one_plain_parse() -> None:
    raw = b'{"hook": "x", "prefetch": {"a": {"n": 1}, "b": [2.5], "a": {"n": 3}}}'
    for _ in range(2):
        assert loads_hook_request(raw) == loads_exact(raw)
        assert list(loads_hook_request(raw)["prefetch"]) == ["a", "b"]


def test_a_repeated_prefetch_is_decoded_once() -> None:
    scenario = next(s for s in SCENARIOS if s.service == "ixazomib-lab-result")
    first, second = loads_hook_request(_body(scenario)), loads_hook_request(_body(scenario))
    assert first["hookInstance"] != second["hookInstance"]
    assert first["prefetch"]
    assert all(second["prefetch"][key] is value for key, value in first["prefetch"].items())
    # Each call gets a prefetch dict of its own; only the values are shared.
    assert second["prefetch"] is not first["prefetch"]


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    return create_app(Config.for_testing()).test_client()


def _prefetch(body: Any) -> Any:
    return body.get("prefetch") if isinstance(body, dict) else None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_calls_never_change_the_shared_prefetch(scenario: Scenario, client: FlaskClient) -> None:
    raw = _body(scenario)
    for _ in range(2):  # the second call takes the warm path (remembered readings)
        response = client.post(
            f"/cds-services/{scenario.service}", data=raw, content_type="application/json"
        )
        assert response.status_code in (200, 412), response.get_data(as_text=True)
    shared = _prefetch(loads_hook_request(raw))  # the objects both calls were given
    assert shared == _prefetch(loads_exact(raw))


def test_prefetches_alike_at_both_ends_are_told_apart() -> None:
    # Same length, same first and last 64 bytes, a different middle: never mistaken.
    pad = "x" * 100
    one = f'{{"prefetch": {{"a": {{"pad": "{pad}", "n": 1.5, "tail": "{pad}"}}}}}}'.encode()
    two = one.replace(b'"n": 1.5', b'"n": 2.5')
    assert len(one) == len(two)
    for raw in (one, two, one, two):
        assert loads_hook_request(raw) == loads_exact(raw)


def test_a_list_of_shared_resources_is_joined_once() -> None:
    from datetime import UTC

    from cds_service.rules.facts.reading import Readings

    raw = b'{"prefetch": {"labs": {"resourceType": "Bundle", "entry": [' + b",".join(
        b'{"resource": {"resourceType": "Observation", "id": "o%d", "valueQuantity": '
        b'{"value": %d.5}}}' % (i, i)
        for i in range(3)
    ) + b"]}}}"
    shared = [e["resource"] for e in loads_hook_request(raw)["prefetch"]["labs"]["entry"]]
    again = [e["resource"] for e in loads_hook_request(raw)["prefetch"]["labs"]["entry"]]
    assert all(a is b for a, b in zip(shared, again, strict=True))
    plain = Readings(UTC)._joined(list(shared))
    first, second = Readings(UTC).content(list(shared)), Readings(UTC).content(list(again))
    assert first == plain
    assert second is first  # remembered by the items' identities
    other = {"resourceType": "Observation", "id": "o2", "valueQuantity": {"value": 9}}
    fresh = [*shared[:2], other]
    changed = Readings(UTC).content(fresh)
    assert changed != first
    assert changed == Readings(UTC)._joined(fresh)  # an item not shared: computed afresh
    assert Readings(UTC).content(list(shared[:2])) != first
    # Shared resources first, then others (a lab-result call): the same bytes as joining all.
    for mixed in ([*shared, other], [*shared[:1], other, *shared[1:]], [other, *shared]):
        assert Readings(UTC).content(mixed) == Readings(UTC)._joined(mixed)
    unwritable = {"resourceType": "Observation", "valueInteger": 2**70}  # not remembered
    assert Readings(UTC).content([*shared, unwritable]) is None


def _outcome(decode: Any, raw: bytes) -> Any:
    try:
        value = decode(raw)
    except (ValueError, RecursionError) as error:
        return ("refused", type(error).__name__ == "RecursionError")
    return ("read", value, list(value) if isinstance(value, dict) else None)


def _bodies_ending_with(prefetch: bytes) -> list[bytes]:
    """Bodies that end with a known prefetch text, valid or not in every way we could find."""
    hook = b'"hook": "order-sign", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"'
    return [
        b"{" + hook + b', "prefetch": ' + prefetch + b"}",
        b"{" + hook + b',"prefetch":' + prefetch + b"}\n",
        b"{" + hook + b' ,\r\n\t"prefetch" :\n' + prefetch + b" \t}\r\n ",
        b'{"prefetch": ' + prefetch + b"}",
        b'{ "prefetch"  :  ' + prefetch + b"  }  ",
        b"{" + hook + b', "prefetch": {"a": 1}, "prefetch": ' + prefetch + b"}",  # repeated
        b'{"prefetch": 7, ' + hook + b', "prefetch": ' + prefetch + b"}",
        b"{" + hook + b', "note": "x\\"", "prefetch": ' + prefetch + b"}",
        b"{" + hook + b', "note": "a, \\"prefetch\\": ' + prefetch + b'"}',  # in a string
        b'{"note": "' + hook.replace(b'"', b'\\"') + b', "prefetch": ' + prefetch + b"}",
        b"{ , " + b'"prefetch": ' + prefetch + b"}",  # not JSON: a leading comma
        b"{" + hook + b',, "prefetch": ' + prefetch + b"}",
        b"{" + hook + b' "prefetch": ' + prefetch + b"}",  # no comma
        b"{" + hook + b', "prefetch": ' + prefetch + b"}\x0b",  # not JSON whitespace
        b"{" + hook + b', "prefetch": ' + prefetch + b"}}",
        b"{" + hook + b', "prefetch": ' + prefetch,  # unclosed
        b"\xef\xbb\xbf{" + hook + b', "prefetch": ' + prefetch + b"}",  # a byte order mark
        b"{" + hook + b', "n": 1.5e999999999, "prefetch": ' + prefetch + b"}",
        b"{" + hook + b', "n": NaN, "prefetch": ' + prefetch + b"}",
        b"{" + hook + b', "s": "\xff", "prefetch": ' + prefetch + b"}",  # not UTF-8
        b"{" + hook + b', "deep": ' + b"[" * 5000 + b"]" * 5000 + b', "prefetch": '
        + prefetch + b"}",
        b"{" + hook + b', "x": {"prefetch": ' + prefetch + b"}}",  # not the body's member
        b"{" + hook + b', "x": {"y": 1, "prefetch": ' + prefetch + b"}}",
        b"[" + hook + b', "prefetch": ' + prefetch + b"]",
        b'{"prefetch": ' + prefetch + b', "hook": "order-sign"}',  # not last
    ]


@pytest.mark.parametrize(
    "scenario", SCENARIOS[:: max(1, len(SCENARIOS) // 12)], ids=lambda s: s.id
)
def test_a_known_prefetch_at_the_end_reads_as_one_plain_parse(scenario: Scenario) -> None:
    prefetch = json.dumps(scenario.cds_request(prefetch=True, fhir_server=None)["prefetch"])
    for text in (prefetch.encode(), b'{"only": {"resourceType": "Patient", "id": "p"}}'):
        loads_hook_request(b'{"prefetch": ' + text + b"}")  # now known whole
        for raw in _bodies_ending_with(text):
            assert _outcome(loads_hook_request, raw) == _outcome(loads_exact, raw), raw[:120]


def test_long_readings_alike_at_both_ends_are_told_apart() -> None:
    from datetime import UTC

    from cds_service.rules.facts.reading import Problems, Readings

    pad = "x" * 5000
    one = [{"resourceType": "Observation", "id": "a", "note": pad, "n": 1, "tail": pad}]
    two = [{"resourceType": "Observation", "id": "a", "note": pad, "n": 2, "tail": pad}]
    calls: list[int] = []

    def reading(resources: list[dict[str, Any]], _: Problems) -> int:
        calls.append(1)
        return int(resources[0]["n"])

    for resources in (one, two, one, two):
        value = Readings(UTC).read("long test", list(resources), Problems(), reading)
        assert value == resources[0]["n"]
    assert len(calls) == 4  # the same signature: each replaced the other
    again = [dict(two[0])]  # the last content read, in other objects: remembered
    assert Readings(UTC).read("long test", again, Problems(), reading) == 2
    assert len(calls) == 4
