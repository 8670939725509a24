"""Prefetch and FHIR-server fetching against a real FHIR R4 server (Medplum, started locally).

Each test checks what an EHR integration engineer relies on: what each prefetch shape means,
that the service completes partial or paged prefetch from ``fhirServer`` with the bearer
token, and that it answers 412 naming the data when it cannot get what it requires.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from builders import PATIENT_ID, empty_prefetch, medication_request, order_sign_request
from fhirserver import FhirServer, FhirServerProcess, start_fhir_server
from flask.testing import FlaskClient

from cds_service.fhir.client import make_session
from cds_service.fhir.record import FhirAccess, RecordGathering
from cds_service.protocol.envelope import HookRequest
from cds_service.rules.data_needs import DATA_NEEDS
from cds_service.rules.inputs import PatientRecord
from cds_service.rules.prefetch_keys import LABS, MEDICATION_REQUESTS
from cds_service.services import SERVICES

pytestmark = pytest.mark.integration
TOKEN = "integration-secret-token-" + uuid.uuid4().hex


def platelet(obs_id: str, value: int, day: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "777-3"}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": f"2026-11-{day:02d}T08:00:00Z",
        "valueQuantity": {
            "value": value,
            "unit": "10*3/uL",
            "system": "http://unitsofmeasure.org",
            "code": "10*3/uL",
        },
    }


PATIENT = {
    "resourceType": "Patient",
    "id": PATIENT_ID,
    "gender": "female",
    "birthDate": "1955-04-02",
}
HISTORY = medication_request("ixa-history", status="active")
MEDICATION = {
    "resourceType": "Medication",
    "id": "med-ninlaro-4",
    "code": {
        "coding": [
            {
                "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                "code": "1723772",
                "display": "Ninlaro 4 MG Oral Capsule",
            }
        ]
    },
}
HISTORY_BY_REFERENCE = {
    **{
        k: v
        for k, v in medication_request("ixa-by-ref", status="active").items()
        if k != "medicationCodeableConcept"
    },
    "medicationReference": {"reference": "Medication/med-ninlaro-4"},
}
LABS_ON_SERVER = [platelet(f"plt-{day}", 150 + day, day) for day in range(1, 8)]


@pytest.fixture
def server(local_fhir_server: FhirServerProcess) -> FhirServer:
    local_fhir_server.load([PATIENT, HISTORY, MEDICATION, HISTORY_BY_REFERENCE, *LABS_ON_SERVER])
    return local_fhir_server


@pytest.fixture(scope="module")
def access() -> Iterator[FhirAccess]:
    with ThreadPoolExecutor(max_workers=8) as executor:
        yield FhirAccess(make_session(), executor, timeout_seconds=5, deadline_seconds=10)


def gather(body: dict[str, Any], access: FhirAccess) -> PatientRecord:
    request = HookRequest.model_validate(body)
    context = SERVICES.for_hook(request.hook).read_context(request.context)
    with RecordGathering(
        access,
        patient_id=context.patient_id,
        prefetch=request.prefetch,
        fhir_server=request.fhirServer,
        access_token=request.fhirAuthorization.access_token if request.fhirAuthorization else None,
        draft_orders=context.draft_orders,
        bundled_medications=context.bundled_medications,
    ) as gathering:
        return gathering.gather(DATA_NEEDS)


def ids(record: PatientRecord, key: str) -> set[str]:
    return {resource["id"] for resource in record.resources[key]}


def test_absent_keys_are_fetched_from_the_fhir_server(
    server: FhirServer, access: FhirAccess
) -> None:
    record = gather(order_sign_request(prefetch={}, fhirServer=server.base_url), access)
    assert record.unavailable == {}
    assert ids(record, "patient") == {PATIENT_ID}
    assert ids(record, MEDICATION_REQUESTS) == {"ixa-history", "ixa-by-ref"}
    assert ids(record, LABS) == {lab["id"] for lab in LABS_ON_SERVER}
    assert record.medications["Medication/med-ninlaro-4"]["id"] == "med-ninlaro-4"


def test_null_and_empty_bundle_mean_no_data_and_are_not_refetched(
    server: FhirServer, access: FhirAccess
) -> None:
    prefetch = empty_prefetch()
    prefetch[LABS] = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    record = gather(order_sign_request(prefetch=prefetch, fhirServer=server.base_url), access)
    assert record.resources[LABS] == []
    assert record.resources[MEDICATION_REQUESTS] == []
    assert record.unavailable == {}


def test_operation_outcome_in_prefetch_is_fetched_again(
    server: FhirServer, access: FhirAccess
) -> None:
    prefetch = empty_prefetch()
    prefetch[LABS] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": "prefetch timed out"}],
    }
    record = gather(order_sign_request(prefetch=prefetch, fhirServer=server.base_url), access)
    assert ids(record, LABS) == {lab["id"] for lab in LABS_ON_SERVER}


def test_paged_prefetch_is_completed_by_following_next(
    server: FhirServerProcess, access: FhirAccess
) -> None:
    server.configure(max_page_size=3)
    labs_query = next(n.query for n in DATA_NEEDS if n.key == LABS)
    first_page = next(server.search_pages(labs_query.replace("{{context.patientId}}", PATIENT_ID)))
    assert any(link["relation"] == "next" for link in first_page["link"])
    assert len(first_page["entry"]) == 3
    prefetch = empty_prefetch()
    prefetch[LABS] = first_page
    record = gather(order_sign_request(prefetch=prefetch, fhirServer=server.base_url), access)
    assert sorted(ids(record, LABS)) == sorted(lab["id"] for lab in LABS_ON_SERVER)
    assert len(record.resources[LABS]) == len(LABS_ON_SERVER)


def test_the_bearer_token_is_sent_and_a_refusal_is_named(access: FhirAccess) -> None:
    with start_fhir_server(token=TOKEN) as guarded:
        guarded.load([PATIENT, HISTORY])
        authorization = {
            "access_token": TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "ixazomib-cds",
        }
        body = order_sign_request(
            prefetch={}, fhirServer=guarded.base_url, fhirAuthorization=authorization
        )
        record = gather(body, access)
        assert ids(record, MEDICATION_REQUESTS) == {"ixa-history"}
        body["fhirAuthorization"] = {**authorization, "access_token": "wrong"}
        refused = gather(body, access)
        assert "refused the access token" in refused.unavailable[MEDICATION_REQUESTS]


def test_required_data_that_cannot_be_fetched_is_412_naming_it(client: FlaskClient) -> None:
    with start_fhir_server(token=TOKEN) as guarded:
        body = order_sign_request(
            prefetch={},
            fhirServer=guarded.base_url,
            fhirAuthorization={
                "access_token": "not-the-token",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "ixazomib-cds",
            },
        )
        response = client.post("/cds-services/ixazomib-order-sign", json=body)
    assert response.status_code == 412
    text = " ".join(issue["diagnostics"] for issue in response.get_json()["issue"])
    assert "medicationRequests" in text
    assert "labs" in text
    assert "refused the access token (HTTP 401)" in text
    assert "not-the-token" not in text


def test_optional_data_that_cannot_be_fetched_is_reported_not_fatal(
    server: FhirServer, access: FhirAccess
) -> None:
    prefetch = empty_prefetch()
    del prefetch["adverseEvents"]
    body = order_sign_request(
        medication_request(), prefetch=prefetch, fhirServer=server.base_url + "-nowhere"
    )
    record = gather(body, access)
    assert set(record.unavailable) == {"adverseEvents"}
