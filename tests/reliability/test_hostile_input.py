"""Hostile and broken input: every one gets a 4xx OperationOutcome that says what is wrong, or,
where that is the right clinical answer, a 200 whose card says the data could not be read.

Decisions (see README "Reliability"):

* transport-level garbage (size, nesting, media type, encoding, not JSON, not CDS Hooks 2.0,
  prefetch values of the wrong resource type, numbers where the envelope wants strings) is a
  protocol error: 4xx, nothing is evaluated;
* FHIR content of the right resource type that the rules cannot read (an STU3-shaped dosage,
  an id that is a number) is a clinical matter: 200 with a ``review`` card naming the resource,
  never a silent pass;
* resources of a FHIR version the service does not speak (DSTU2 ``MedicationOrder``) are a
  protocol error (400): the interface is misconfigured for every patient, which a card per
  order would hide from the people who can fix it;
* two draft orders with the same id are refused (400): a suggestion's ``update`` action names
  the draft by id, so advice would be ambiguous.
"""

from __future__ import annotations

import copy
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from builders import empty_prefetch, medication_request, order_sign_request
from cds_assertions import assert_conformant_response, recommendations
from flask import Flask
from flask.testing import FlaskClient
from live_server import LiveService, start_service

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.fixtures import Scenario
from reliability.support import assert_operation_outcome, schema_errors

SIGN = "/cds-services/ixazomib-order-sign"
FEEDBACK = SIGN + "/feedback"
LIVE_LIMIT = 64 * 1024


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


@pytest.fixture
def hep(scenarios: dict[str, Scenario]) -> dict[str, Any]:
    """A real order-sign request with advice (start at 3 mg), fully prefetched."""
    request: dict[str, Any] = _json(scenarios["hep-moderate"].cds_request(prefetch=True))
    return request


def _draft(request: dict[str, Any]) -> dict[str, Any]:
    draft: dict[str, Any] = request["context"]["draftOrders"]["entry"][0]["resource"]
    return draft


def _refused(response: Any, status: int, mentions: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert_operation_outcome(response.get_json(), mentions=mentions)


def _review_card_naming(response: Any, reference: str) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    body = response.get_json()
    assert_conformant_response(body)
    assert not schema_errors("CdsResponse", body)
    assert any(r["ixazomib"]["action"] == "review" for r in recommendations(body)), body
    assert any(reference in (card.get("detail") or "") for card in body["cards"]), body


# -- size, nesting, media type, encoding ---------------------------------------------------------


def test_an_oversized_body_is_413_with_the_limit(client: FlaskClient) -> None:
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    body = json.dumps(order_sign_request(extension={"pad": "x" * limit})).encode()
    _refused(
        client.post(SIGN, data=body, content_type="application/json"),
        413,
        f"limit of {limit} bytes",
    )


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_deeply_nested_json_is_400(client: FlaskClient, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    body = opening * 100_000 + "1" + closing * 100_000
    _refused(client.post(SIGN, data=body, content_type="application/json"), 400, "nested")


def test_moderately_nested_extension_is_harmless(client: FlaskClient) -> None:
    nested: Any = "leaf"
    for _ in range(500):
        nested = {"n": nested}
    response = client.post(SIGN, json=order_sign_request(extension={"deep": nested}))
    assert response.status_code == 200


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/json-patch+json",
        None,
    ],
)
def test_a_wrong_content_type_is_415(client: FlaskClient, content_type: str | None) -> None:
    body = json.dumps(order_sign_request())
    kwargs: dict[str, Any] = {"data": body}
    if content_type is not None:
        kwargs["content_type"] = content_type
    _refused(client.post(SIGN, **kwargs), 415, "application/json")
    _refused(client.post(FEEDBACK, **kwargs), 415, "application/json")


def test_fhir_json_and_a_charset_parameter_are_accepted(client: FlaskClient) -> None:
    body = json.dumps(order_sign_request())
    for content_type in ("application/fhir+json", "application/json; charset=utf-8"):
        assert client.post(SIGN, data=body, content_type=content_type).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        '{"hook": "order-sign", "x": "caf\u00e9"}'.encode("latin-1"),
        json.dumps(order_sign_request()).encode("utf-16"),
        b'{"hook": "\xff\xfe\xfd"}',
        b"\xc0\xaf{}",
    ],
    ids=["latin-1", "utf-16", "invalid bytes", "overlong encoding"],
)
def test_non_utf8_bytes_are_400(client: FlaskClient, raw: bytes) -> None:
    _refused(client.post(SIGN, data=raw, content_type="application/json"), 400, "UTF-8")


@pytest.mark.parametrize(
    ("raw", "mentions"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b"[]", "not a valid CDS Hooks 2.0 request"),
        (b"null", "not a valid CDS Hooks 2.0 request"),
        (b'"order-sign"', "not a valid CDS Hooks"),
        (b"\xef\xbb\xbf{}", "BOM"),
    ],
)
def test_not_json_or_not_an_object_is_400(client: FlaskClient, raw: bytes, mentions: str) -> None:
    _refused(client.post(SIGN, data=raw, content_type="application/json"), 400, mentions)


# -- numbers where strings belong, the envelope ---------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "mentions"),
    [
        ("hook", 5, "hook"),
        ("hookInstance", 123, "hookInstance"),
        ("hookInstance", "not-a-uuid", "hookInstance"),
        ("fhirServer", 5, "fhirServer"),
        ("fhirServer", "file:///etc/passwd", "fhirServer"),
        ("prefetch", "x", "prefetch"),
        ("context", [], "context"),
    ],
)
def test_wrong_types_in_the_envelope_are_400(
    client: FlaskClient, field: str, value: Any, mentions: str
) -> None:
    body = order_sign_request()
    body[field] = value
    _refused(client.post(SIGN, json=body), 400, mentions)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("patientId", 123),
        ("patientId", "  "),
        ("userId", 7),
        ("patientId", None),
        ("draftOrders", "MedicationRequest/1"),
        ("draftOrders", {"resourceType": "Patient"}),
    ],
)
def test_wrong_types_in_the_context_are_400(client: FlaskClient, field: str, value: Any) -> None:
    body = order_sign_request()
    body["context"][field] = value
    _refused(client.post(SIGN, json=body), 400, f"context.{field}")


def test_a_draft_order_id_that_is_a_number_gets_a_review_card(client: FlaskClient) -> None:
    order = medication_request()
    order["id"] = 12345
    _review_card_naming(client.post(SIGN, json=order_sign_request(order)), "12345")


def test_fhir_access_token_must_be_complete(client: FlaskClient) -> None:
    body = order_sign_request(
        fhirServer="http://127.0.0.1:9/fhir",
        fhirAuthorization={"access_token": 5, "token_type": "Bearer"},
    )
    _refused(client.post(SIGN, json=body), 400, "fhirAuthorization")
    body = order_sign_request(
        fhirAuthorization={
            "access_token": "t",
            "token_type": "Bearer",
            "expires_in": 60,
            "scope": "s",
            "subject": "c",
        }
    )
    _refused(client.post(SIGN, json=body), 400, "fhirServer is required")


# -- FHIR resources of the wrong type or version ------------------------------------------------


def test_a_patient_where_a_bundle_belongs_in_prefetch_is_400(client: FlaskClient) -> None:
    prefetch = empty_prefetch()
    prefetch["medicationRequests"] = {"resourceType": "Patient", "id": "p"}
    _refused(
        client.post(SIGN, json=order_sign_request(prefetch=prefetch)),
        400,
        "prefetch.medicationRequests must be a Bundle",
    )


def test_an_observation_where_the_patient_belongs_is_400(client: FlaskClient) -> None:
    prefetch = empty_prefetch()
    prefetch["patient"] = {"resourceType": "Observation", "id": "o"}
    _refused(
        client.post(SIGN, json=order_sign_request(prefetch=prefetch)),
        400,
        "prefetch.patient must be a Patient",
    )


@pytest.mark.parametrize("value", [[1, 2], "Bundle", 5, {"resourceType": "Bundle", "entry": "x"}])
def test_prefetch_values_that_are_not_resources_are_400(client: FlaskClient, value: Any) -> None:
    prefetch = empty_prefetch()
    prefetch["labs"] = value
    _refused(client.post(SIGN, json=order_sign_request(prefetch=prefetch)), 400, "prefetch.labs")


def test_an_stu3_shaped_medication_request_gets_a_review_card(
    client: FlaskClient, hep: dict[str, Any]
) -> None:
    draft = _draft(hep)
    dose = draft["dosageInstruction"][0].pop("doseAndRate")[0]["doseQuantity"]
    draft["dosageInstruction"][0]["doseQuantity"] = dose  # STU3: dose directly on the dosage
    draft["dosageInstruction"][0]["timing"] = "weekly"
    _review_card_naming(client.post(SIGN, json=hep), f"MedicationRequest/{draft['id']}")


def test_a_dstu2_medication_order_in_draft_orders_is_400(
    client: FlaskClient, hep: dict[str, Any]
) -> None:
    draft = _draft(hep)
    hep["context"]["draftOrders"]["entry"][0]["resource"] = {
        "resourceType": "MedicationOrder",
        "id": draft["id"],
        "status": "draft",
        "patient": draft["subject"],
        "medicationCodeableConcept": draft["medicationCodeableConcept"],
        "dosageInstruction": [{"doseQuantity": {"value": 4, "unit": "mg"}}],
    }
    _refused(client.post(SIGN, json=hep), 400, "MedicationOrder")


def test_a_dstu2_medication_order_in_prefetch_is_400(
    client: FlaskClient, hep: dict[str, Any]
) -> None:
    hep["prefetch"]["medicationRequests"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "resource": {
                    "resourceType": "MedicationOrder",
                    "id": "old-1",
                    "status": "active",
                    "patient": {"reference": "Patient/x"},
                }
            }
        ],
    }
    _refused(client.post(SIGN, json=hep), 400, "MedicationOrder")


def test_an_unreadable_medication_gets_a_review_card(
    client: FlaskClient, hep: dict[str, Any]
) -> None:
    draft = _draft(hep)
    draft["medicationCodeableConcept"] = "ixazomib 4 mg"
    _review_card_naming(client.post(SIGN, json=hep), f"MedicationRequest/{draft['id']}")


# -- duplicate ids ------------------------------------------------------------------------------


def test_duplicate_draft_order_ids_are_400(client: FlaskClient, hep: dict[str, Any]) -> None:
    twin = copy.deepcopy(_draft(hep))
    twin["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 3
    hep["context"]["draftOrders"]["entry"].append({"resource": twin})
    _refused(client.post(SIGN, json=hep), 400, "repeats")


def test_duplicate_prefetched_resources_are_counted_once(
    client: FlaskClient, hep: dict[str, Any]
) -> None:
    expected = recommendations(client.post(SIGN, json=hep).get_json())
    labs = hep["prefetch"]["labs"]
    labs["entry"] = labs["entry"] + copy.deepcopy(labs["entry"])
    hep["hookInstance"] = "6f1a3c2e-8c9b-4c1f-9d7e-2b6a1e0f3c4d"
    response = client.post(SIGN, json=hep)
    assert response.status_code == 200
    assert recommendations(response.get_json()) == expected


def test_duplicate_feedback_is_stored_once(client: FlaskClient) -> None:
    entry = {
        "card": "3c1f0f0e-5d2a-4a55-9a1e-2f4e8b6c7d90",
        "outcome": "accepted",
        "outcomeTimestamp": "2026-11-21T10:00:00Z",
    }
    first = client.post(FEEDBACK, json={"feedback": [entry, dict(entry)]}).get_json()
    again = client.post(FEEDBACK, json={"feedback": [entry]}).get_json()
    assert first == {"stored": 1, "duplicates": 1}
    assert again == {"stored": 0, "duplicates": 1}


# -- huge bundles -------------------------------------------------------------------------------


@pytest.fixture
def wide_app() -> Iterator[Flask]:
    app = create_app(Config.for_testing(max_body_bytes=8 * 1024 * 1024))
    yield app
    app.extensions["ixazomib_cds"].store.close()


def test_a_huge_draft_orders_bundle_is_answered_quickly(
    wide_app: Flask, hep: dict[str, Any]
) -> None:
    draft = _draft(hep)
    hep["context"]["draftOrders"]["entry"] = [
        {"resource": dict(copy.deepcopy(draft), id=f"d{i}")} for i in range(3000)
    ]
    started = time.perf_counter()
    response = wide_app.test_client().post(SIGN, json=hep)
    elapsed = time.perf_counter() - started
    assert response.status_code in (200, 400)
    assert elapsed < 2.0, f"{elapsed:.1f} s"


def test_a_huge_prefetch_bundle_is_refused_quickly(wide_app: Flask, hep: dict[str, Any]) -> None:
    entries = hep["prefetch"]["labs"]["entry"]
    big = []
    for index in range(8000):
        entry = copy.deepcopy(entries[index % len(entries)])
        entry["resource"]["id"] = f"lab-{index}"
        big.append(entry)
    hep["prefetch"]["labs"]["entry"] = big
    body = json.dumps(hep).encode()
    assert len(body) < 8 * 1024 * 1024
    started = time.perf_counter()
    response = wide_app.test_client().post(SIGN, data=body, content_type="application/json")
    elapsed = time.perf_counter() - started
    _refused(response, 400, "at most 5000")
    assert elapsed < 3.0, f"{elapsed:.1f} s for {len(body)} bytes"


def test_a_long_history_under_the_entry_limit_is_evaluated(
    wide_app: Flask, hep: dict[str, Any]
) -> None:
    entries = hep["prefetch"]["labs"]["entry"]
    long_history = []
    for index in range(1500):
        entry = copy.deepcopy(entries[index % len(entries)])
        entry["resource"]["id"] = f"lab-{index}"
        long_history.append(entry)
    hep["prefetch"]["labs"]["entry"] = long_history
    response = wide_app.test_client().post(SIGN, json=hep)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert recommendations(response.get_json())


# -- feedback -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_feedback_timestamp_out_of_range_is_400(client: FlaskClient, stamp: str) -> None:
    body = {"feedback": [{"card": "c1", "outcome": "accepted", "outcomeTimestamp": stamp}]}
    _refused(client.post(FEEDBACK, json=body), 400, "outcomeTimestamp")


@pytest.mark.parametrize(
    "entry",
    [
        {"card": 5, "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"},
        {"card": "c", "outcome": "ignored", "outcomeTimestamp": "2026-01-01T00:00:00Z"},
        {"card": "c", "outcome": "accepted", "outcomeTimestamp": "yesterday"},
        {
            "card": "c",
            "outcome": "overridden",
            "outcomeTimestamp": "2026-01-01T00:00:00Z",
            "overrideReason": {"reason": "x"},
        },
        {
            "card": "c",
            "outcome": "accepted",
            "outcomeTimestamp": "2026-01-01T00:00:00Z",
            "acceptedSuggestions": [{"id": 1}],
        },
        {"card": "c" * 5000, "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"},
    ],
    ids=["card number", "outcome", "timestamp", "reason string", "suggestion id", "long card"],
)
def test_malformed_feedback_is_400(client: FlaskClient, entry: dict[str, Any]) -> None:
    _refused(client.post(FEEDBACK, json={"feedback": [entry]}), 400, "feedback")


def test_too_many_feedback_items_are_400(client: FlaskClient) -> None:
    entry = {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-01-01T00:00:00Z"}
    _refused(client.post(FEEDBACK, json={"feedback": [entry] * 101}), 400, "at most 100")


# -- the same through gunicorn (the real server) ------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[LiveService]:
    service = start_service(workers=2, env={"CDS_MAX_BODY_BYTES": str(LIVE_LIMIT)})
    yield service
    service.stop()


def _post_live(
    live: LiveService,
    data: Any,
    content_type: str | None = "application/json",
    path: str = SIGN,
    **headers: str,
) -> requests.Response:
    all_headers = {**live.headers(path), **headers}
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    return requests.post(live.base_url + path, data=data, headers=all_headers, timeout=15)


def test_live_oversized_body_is_413_with_the_limit(live: LiveService) -> None:
    response = _post_live(live, b"[" + b" " * (LIVE_LIMIT + 10) + b"]")
    assert response.status_code == 413
    assert_operation_outcome(response.json(), mentions=f"limit of {LIVE_LIMIT} bytes")


def test_live_oversized_chunked_body_is_413(live: LiveService) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(LIVE_LIMIT // 4096 + 4):
            yield b"x" * 4096
        yield b'"}'

    response = _post_live(live, chunks())
    assert response.status_code == 413
    assert_operation_outcome(response.json(), mentions="limit")


@pytest.mark.parametrize(
    ("data", "content_type", "status", "mentions"),
    [
        (b'{"x": "\xe9"}', "application/json", 400, "UTF-8"),
        (b"{}", "text/plain", 415, "application/json"),
        (b"{}", None, 415, "application/json"),
        (b"[" * 20000 + b"]" * 20000, "application/json", 400, "nested"),
    ],
)
def test_live_broken_bodies_are_4xx_operation_outcomes(
    live: LiveService, data: bytes, content_type: str | None, status: int, mentions: str
) -> None:
    response = _post_live(live, data, content_type)
    assert response.status_code == status, response.text
    assert_operation_outcome(response.json(), mentions=mentions)


@pytest.mark.parametrize(
    "chunked",
    [b"zz\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n"],
    ids=["bad chunk size", "chunk without its CRLF"],
)
@pytest.mark.parametrize("path", [SIGN, SIGN + "/feedback"])
def test_live_malformed_chunked_body_is_400(live: LiveService, chunked: bytes, path: str) -> None:
    """Sent by hand on a socket: requests would only ever send well-formed chunks."""
    port = int(live.base_url.rsplit(":", 1)[1])
    headers = "".join(f"{k}: {v}\r\n" for k, v in live.headers(path).items())
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + chunked)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"400", answer[:300]
    body = rest.split(b"\r\n\r\n", 1)[1]
    assert_operation_outcome(json.loads(body), mentions="malformed")


def test_live_service_survived_the_hostile_input(live: LiveService) -> None:
    assert requests.get(live.base_url + "/healthz", timeout=5).status_code == 200
    assert "Traceback" not in live.logs()


def test_prefetched_results_of_another_patient_are_400(
    client: FlaskClient, hep: dict[str, Any]
) -> None:
    labs = hep["prefetch"]["labs"]
    labs["entry"][0]["resource"]["subject"] = {"reference": "Patient/someone-else"}
    response = client.post(SIGN, json=hep)
    assert response.status_code == 400
    assert_operation_outcome(response.get_json(), mentions="Patient/someone-else")


def test_a_prefetched_patient_who_is_not_the_context_patient_is_400(
    client: FlaskClient, hep: dict[str, Any]
) -> None:
    hep["prefetch"]["patient"]["id"] = "someone-else"
    response = client.post(SIGN, json=hep)
    assert response.status_code == 400
    assert_operation_outcome(response.get_json(), mentions="prefetch.patient")
