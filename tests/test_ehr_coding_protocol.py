"""Orders and results coded as EHRs code them, through the app (issue 12, items 5 and 6): an
ixazomib order named only by NDC or only by its text, and an ANC sent as a neutrophil
percentage with a WBC in a CBC panel under the LOINC OID, each gets the hold card for an ANC
below 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from builders import PATIENT_ID, empty_prefetch, medication_request, order_sign_request
from flask.testing import FlaskClient

RECOMMENDATION = "org.ixazomib-cds.recommendation"
LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"
UCUM = "http://unitsofmeasure.org"


def _count(code: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": LOINC_OID, "code": code}]},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def prefetch_with_cbc(*components: dict[str, Any]) -> dict[str, Any]:
    taken = (datetime.now(UTC) - timedelta(hours=6)).isoformat()
    cbc = {
        "resourceType": "Observation",
        "id": "cbc-1",
        "status": "final",
        "code": {"coding": [{"system": LOINC_OID, "code": "57021-8"}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": taken,
        "component": list(components),
    }
    earlier = medication_request("earlier", status="active")
    earlier["authoredOn"] = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    prefetch = empty_prefetch()
    prefetch["patient"] = {"resourceType": "Patient", "id": PATIENT_ID, "birthDate": "1950-01-01"}
    prefetch["medicationRequests"] = {"resourceType": "Bundle", "entry": [{"resource": earlier}]}
    prefetch["labs"] = {"resourceType": "Bundle", "entry": [{"resource": cbc}]}
    return prefetch


LOW_ANC_PANEL = (_count("751-8", 0.3, "10*3/uL"), _count("777-3", 200, "10*3/uL"))


def _rules(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return {c["extension"][RECOMMENDATION]["rule"]: c for c in response.get_json()["cards"]}


@pytest.mark.parametrize(
    "medication",
    [
        {"coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "63020-0080-02"}]},
        {
            "coding": [{"system": "urn:oid:1.2.3.4", "code": "80321"}],
            "text": "NINLARO 4 MG PO CAPS",
        },
    ],
    ids=["NDC only", "text only"],
)
def test_an_ixazomib_order_coded_by_ndc_or_text_is_held_for_a_low_anc_in_a_cbc_panel(
    client: FlaskClient, medication: dict[str, Any]
) -> None:
    draft = medication_request()
    draft["medicationCodeableConcept"] = medication
    body = order_sign_request(draft, prefetch=prefetch_with_cbc(*LOW_ANC_PANEL))
    card = _rules(client.post("/cds-services/ixazomib-order-sign", json=body))["anc-below-500"]
    assert card["extension"][RECOMMENDATION]["ixazomib"]["action"] == "hold"
    assert "300/mm3" in card["detail"]


def test_an_anc_from_percentage_and_wbc_is_shown_on_the_hold_card(client: FlaskClient) -> None:
    panel = (
        _count("26464-8", 3.3, "10*9/L"),
        _count("770-8", 12, "%"),
        _count("777-3", 200, "10*3/uL"),
    )
    body = order_sign_request(medication_request(), prefetch=prefetch_with_cbc(*panel))
    card = _rules(client.post("/cds-services/ixazomib-order-sign", json=body))["anc-below-500"]
    assert "396/mm3 = 12 % x WBC 3.3 10*9/L" in card["detail"]


def test_an_order_nothing_names_as_ixazomib_gets_no_card(client: FlaskClient) -> None:
    draft = medication_request()
    draft["medicationCodeableConcept"] = {"coding": [{"system": "urn:oid:1.2.3.4", "code": "1"}]}
    body = order_sign_request(draft, prefetch=prefetch_with_cbc(*LOW_ANC_PANEL))
    assert _rules(client.post("/cds-services/ixazomib-order-sign", json=body)) == {}
