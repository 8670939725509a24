"""Orders and results coded as EHRs code them, fetched from a real FHIR server (issue 12,
items 5 and 6): the service's own queries must find them. A CBC panel coded under the LOINC
OID with the neutrophil percentage and the WBC as components, and an earlier ixazomib order
coded only by NDC, make an order named only by its text ("NINLARO 4 MG PO CAPS") held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from builders import PATIENT_ID, medication_request, order_sign_request
from fhirserver import FhirServerProcess
from flask.testing import FlaskClient

pytestmark = pytest.mark.integration
LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"
UCUM = "http://unitsofmeasure.org"
RECOMMENDATION = "org.ixazomib-cds.recommendation"


def _component(code: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": LOINC_OID, "code": code}]},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def test_an_order_named_by_text_is_held_for_an_anc_computed_from_a_fetched_panel(
    local_fhir_server: FhirServerProcess, client: FlaskClient
) -> None:
    now = datetime.now(UTC)
    earlier = medication_request("ixa-ndc", status="active")
    earlier["medicationCodeableConcept"] = {
        "coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "63020-080-02"}]
    }
    earlier["authoredOn"] = (now - timedelta(days=7)).isoformat()
    panel = {
        "resourceType": "Observation",
        "id": "cbc-panel",
        "status": "final",
        "code": {"coding": [{"system": LOINC_OID, "code": "57021-8"}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": (now - timedelta(hours=6)).isoformat(),
        "component": [
            _component("6690-2", 3.3, "10*9/L"),
            _component("770-8", 12, "%"),
            _component("777-3", 180, "10*3/uL"),
        ],
    }
    patient = {"resourceType": "Patient", "id": PATIENT_ID, "birthDate": "1950-01-01"}
    local_fhir_server.load([patient, earlier, panel])

    draft = medication_request()
    draft["medicationCodeableConcept"] = {
        "coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288", "code": "80321"}],
        "text": "NINLARO 4 MG PO CAPS",
    }
    body = order_sign_request(
        draft,
        prefetch={},
        fhirServer=local_fhir_server.base_url,
        fhirAuthorization={  # an EHR sends its token with fhirServer (the test server takes any)
            "access_token": "integration-test-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds-service",
        },
    )
    response = client.post("/cds-services/ixazomib-order-sign", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = {c["extension"][RECOMMENDATION]["rule"]: c for c in response.get_json()["cards"]}
    card = cards["anc-below-500"]
    assert card["extension"][RECOMMENDATION]["ixazomib"]["action"] == "hold"
    assert "396/mm3 = 12 % x WBC 3.3 10*9/L" in card["detail"]
    assert "recognised by its text, 'NINLARO 4 MG PO CAPS'" in card["detail"]
