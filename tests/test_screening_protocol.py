"""The lab-result and patient-view services screen each call with the medication list first
(``Screening`` in the service registry), and the prefetch is decoded key by key, when read.

What an EHR notices: a call about a patient who takes no ixazomib is answered from the
medication list alone, so the rest of the record need not be prefetched nor fetchable, and a
prefetch key no stage reads is neither decoded nor checked. The medication list itself passes
every check it passed before, and whatever leaves it in doubt (an ixazomib order that cannot
be read, a Medication that cannot be had, no medication list) gets the whole record read.
The same calls against a real FHIR server, counting what it is asked for:
tests/integration/test_screening_on_fhir_server.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from builders import medication_request
from flask.testing import FlaskClient
from reliability.support import assert_operation_outcome

from cds_service.fixtures import Scenario, load_scenarios
from cds_service.rules.prefetch_keys import LABS, MEDICATION_REQUESTS, PATIENT

SCENARIOS = {s.id: s for s in load_scenarios()}
OFF = ("lab-no-ixazomib-history", "pv-not-on-ixazomib")  # takes no ixazomib
ON = ("lab-platelets-1st-onset", "pv-hold-in-force")  # takes ixazomib
PLACEHOLDER = "__PREFETCH_VALUE__"


def _url(scenario: Scenario) -> str:
    return f"/cds-services/{scenario.service}"


def _only_the_medication_list(scenario: Scenario, **others: Any) -> dict[str, Any]:
    """The scenario's request with no fhirServer and only ``medicationRequests`` prefetched
    (and ``others``)."""
    body = scenario.cds_request(prefetch=True)
    body["prefetch"] = {MEDICATION_REQUESTS: body["prefetch"][MEDICATION_REQUESTS], **others}
    return body


def _with_text(body: dict[str, Any], key: str, text: bytes) -> bytes:
    """``body`` as JSON with ``text`` (any bytes) as the value of ``prefetch.<key>``."""
    body["prefetch"][key] = PLACEHOLDER
    return json.dumps(body).encode().replace(f'"{PLACEHOLDER}"'.encode(), text)


def _another_patients_labs(scenario: Scenario) -> dict[str, Any]:
    labs = scenario.cds_request(prefetch=True)["prefetch"][LABS]
    for entry in labs["entry"]:
        entry["resource"]["subject"] = {"reference": "Patient/someone-else"}
    if not labs["entry"]:
        labs["entry"] = [
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": "other-plt",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
                    "subject": {"reference": "Patient/someone-else"},
                }
            }
        ]
    return labs


# -- decided from the medication list alone ------------------------------------------------------


@pytest.mark.parametrize("scenario_id", OFF)
def test_off_ixazomib_the_medication_list_alone_is_enough(
    client: FlaskClient, scenario_id: str
) -> None:
    """Before the screen, this was a 412: no labs or patient prefetched, no fhirServer."""
    scenario = SCENARIOS[scenario_id]
    response = client.post(_url(scenario), json=_only_the_medication_list(scenario))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"cards": []}


@pytest.mark.parametrize("scenario_id", ON)
def test_on_ixazomib_the_rest_is_required_as_before(client: FlaskClient, scenario_id: str) -> None:
    scenario = SCENARIOS[scenario_id]
    response = client.post(_url(scenario), json=_only_the_medication_list(scenario))
    assert_operation_outcome_412(response.get_json(), response.status_code, (PATIENT, LABS))


@pytest.mark.parametrize("scenario_id", OFF)
def test_without_a_medication_list_nothing_is_concluded(
    client: FlaskClient, scenario_id: str
) -> None:
    """No medication list (not prefetched, no fhirServer): 412 naming it, as before; never
    "takes no ixazomib"."""
    scenario = SCENARIOS[scenario_id]
    body = scenario.cds_request(prefetch=True)
    del body["prefetch"][MEDICATION_REQUESTS]
    response = client.post(_url(scenario), json=body)
    assert_operation_outcome_412(response.get_json(), response.status_code, (MEDICATION_REQUESTS,))


@pytest.mark.parametrize("scenario_id", OFF)
def test_an_ixazomib_order_that_cannot_be_read_gets_the_whole_record(
    client: FlaskClient, scenario_id: str
) -> None:
    """An ixazomib order that is not valid FHIR may be this patient's ixazomib: the rest of the
    record is needed, so without it the answer is the 412 that names it."""
    scenario = SCENARIOS[scenario_id]
    body = _only_the_medication_list(scenario)
    unreadable = {
        **medication_request("ixa-unreadable", status="active"),
        "subject": {"reference": f"Patient/{scenario.patient_id}"},
        "authoredOn": "2026-01-05",
        "intent": 5,
    }
    body["prefetch"][MEDICATION_REQUESTS]["entry"].append({"resource": unreadable})
    response = client.post(_url(scenario), json=body)
    assert_operation_outcome_412(response.get_json(), response.status_code, (LABS,))


def test_an_order_whose_medication_cannot_be_had_gets_the_whole_record(
    client: FlaskClient,
) -> None:
    """An active order whose Medication is neither sent nor fetchable may be ixazomib: the
    whole record is read and the card names the order's unknown drug."""
    scenario = SCENARIOS["lab-no-ixazomib-history"]
    body = scenario.cds_request(prefetch=True)
    order = body["prefetch"][MEDICATION_REQUESTS]["entry"][0]["resource"]
    order.pop("medicationCodeableConcept")
    order["status"] = "active"
    order["medicationReference"] = {"reference": "Medication/nowhere"}
    response = client.post(_url(scenario), json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    details = " ".join(card.get("detail") or "" for card in response.get_json()["cards"])
    assert "Medication/nowhere" in details


# -- what is checked, and what is not read at all ----------------------------------------------


@pytest.mark.parametrize("scenario_id", OFF)
def test_another_patients_medication_list_is_refused(client: FlaskClient, scenario_id: str) -> None:
    scenario = SCENARIOS[scenario_id]
    body = _only_the_medication_list(scenario)
    order = {**medication_request("other-order", status="active")}
    order["subject"] = {"reference": "Patient/someone-else"}
    body["prefetch"][MEDICATION_REQUESTS]["entry"].append({"resource": order})
    response = client.post(_url(scenario), json=body)
    assert response.status_code == 400
    assert_operation_outcome(response.get_json(), mentions="prefetch.medicationRequests")


@pytest.mark.parametrize("scenario_id", OFF)
def test_off_ixazomib_a_key_never_read_is_not_checked(
    client: FlaskClient, scenario_id: str
) -> None:
    """Another patient's labs in a key the call never reads: nothing of them reaches a rule or
    a card, so the call is answered for what it reads (the medication list, checked)."""
    scenario = SCENARIOS[scenario_id]
    body = _only_the_medication_list(scenario, labs=_another_patients_labs(scenario))
    response = client.post(_url(scenario), json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"cards": []}


@pytest.mark.parametrize("scenario_id", ON)
def test_on_ixazomib_another_patients_labs_are_refused(
    client: FlaskClient, scenario_id: str
) -> None:
    scenario = SCENARIOS[scenario_id]
    body = scenario.cds_request(prefetch=True)
    body["prefetch"][LABS] = _another_patients_labs(scenario)
    response = client.post(_url(scenario), json=body)
    assert response.status_code == 400
    assert_operation_outcome(response.get_json(), mentions="prefetch.labs")


# -- prefetch values decoded when read -----------------------------------------------------------

HUGE_INTEGER = b"1" * 4301  # valid JSON; more digits than the decoder turns into an int
HUGE_IN_A_BUNDLE = b'{"resourceType":"Bundle","type":"searchset","total":' + HUGE_INTEGER + b"}"


@pytest.mark.parametrize("scenario_id", OFF + ON)
def test_a_value_read_that_cannot_be_decoded_is_400_naming_its_key(
    client: FlaskClient, scenario_id: str
) -> None:
    scenario = SCENARIOS[scenario_id]
    raw = _with_text(scenario.cds_request(prefetch=True), MEDICATION_REQUESTS, HUGE_IN_A_BUNDLE)
    response = client.post(_url(scenario), data=raw, content_type="application/json")
    assert response.status_code == 400
    assert_operation_outcome(response.get_json(), mentions="prefetch.medicationRequests")


def test_a_value_never_read_is_not_decoded(client: FlaskClient) -> None:
    """Off ixazomib the labs are never read: an integer too long to decode there does not
    fail the call. On ixazomib they are read, and the same value is a 400 naming the key."""
    off, on = SCENARIOS["lab-no-ixazomib-history"], SCENARIOS["lab-platelets-1st-onset"]
    raw = _with_text(off.cds_request(prefetch=True), LABS, HUGE_IN_A_BUNDLE)
    response = client.post(_url(off), data=raw, content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    raw = _with_text(on.cds_request(prefetch=True), LABS, HUGE_IN_A_BUNDLE)
    response = client.post(_url(on), data=raw, content_type="application/json")
    assert response.status_code == 400
    assert_operation_outcome(response.get_json(), mentions="prefetch.labs")


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        (b'"\xff"', "not valid UTF-8"),  # the skip does not check a string's UTF-8
        (b'"\xed\xa0\x80"', "not valid UTF-8"),  # a surrogate encoded in UTF-8
        (b'"\\ud800"', "not valid JSON"),  # a lone surrogate in an escape
        (b'"\\udc00x"', "not valid JSON"),
        (b"NaN", "not valid JSON"),
        (b"-Infinity", "not valid JSON"),
        (b"01", "not valid JSON"),
        (b"1.", "not valid JSON"),
        (b".5", "not valid JSON"),
        (b"[1,]", "not valid JSON"),
        (b'"a\x01b"', "not valid JSON"),
        (b"[" * 2000 + b"]" * 2000, "nested too deeply"),
    ],
)
def test_malformed_json_in_a_key_never_read_is_still_400(
    client: FlaskClient, text: bytes, mentions: str
) -> None:
    """The whole body must be JSON whatever is read of it: as before, a 400 for the body."""
    scenario = SCENARIOS["lab-no-ixazomib-history"]
    raw = _with_text(scenario.cds_request(prefetch=True), LABS, text)
    response = client.post(_url(scenario), data=raw, content_type="application/json")
    assert response.status_code == 400
    assert_operation_outcome(response.get_json(), mentions=mentions)


def assert_operation_outcome_412(body: Any, status: int, keys: tuple[str, ...]) -> None:
    assert status == 412, body
    assert_operation_outcome(body)
    text = " ".join(issue["diagnostics"] for issue in body["issue"])
    for key in keys:
        assert f"{key} (" in text, (key, text)


def test_medications_are_taken_from_beside_the_orders_only(client: FlaskClient) -> None:
    """A Medication an order references, _included in the medication list's Bundle, names the
    order's drug for the screen. Anywhere else in the prefetch it is not beside the orders:
    the screen cannot use it (the order's drug stays unknown, so the rest is read) and the key
    holding it is refused for holding a resource of the wrong type."""
    scenario = SCENARIOS["lab-no-ixazomib-history"]
    body = scenario.cds_request(prefetch=True)
    order = body["prefetch"][MEDICATION_REQUESTS]["entry"][0]["resource"]
    medication = {
        "resourceType": "Medication",
        "id": "len-10",
        "code": order.pop("medicationCodeableConcept"),
    }
    order["medicationReference"] = {"reference": "Medication/len-10"}
    beside = json.loads(json.dumps(body))
    beside["prefetch"][MEDICATION_REQUESTS]["entry"].append(
        {"resource": medication, "search": {"mode": "include"}}
    )
    response = client.post(_url(scenario), json=beside)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"cards": []}

    elsewhere = json.loads(json.dumps(body))
    elsewhere["prefetch"][LABS]["entry"].append({"resource": medication})
    response = client.post(_url(scenario), json=elsewhere)
    assert response.status_code == 400
    assert_operation_outcome(response.get_json(), mentions="prefetch.labs holds a Medication")
