"""The FHIR test server does what the service needs: the exact DATA_NEEDS queries, paging, tokens.

These tests exercise the server (local Medplum engine, or ``CDS_TEST_FHIR_SERVER``), not the
service; they pin down what the service's integration tests can rely on.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests
from fhirserver import FhirServer, FhirServerProcess, start_fhir_server

from cds_service.rules.codes import LOINC, MEDDRA, NCIT, SNOMED
from cds_service.rules.data_needs import DATA_NEEDS
from cds_service.rules.prefetch_keys import (
    ADVERSE_EVENTS,
    ALLERGIES,
    CONDITIONS,
    LABS,
    MEDICATION_REQUESTS,
    PATIENT,
    PROCEDURES,
    TOXICITY_GRADES,
    TOXICITY_TERM_OBSERVATIONS,
)

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]  # ids unique per run, so the tests also work on a shared server
PID = f"ixa-{RUN}-p1"
OTHER_PID = f"ixa-{RUN}-p2"


def rid(name: str) -> str:
    return f"ixa-{RUN}-{name}"


def ref(patient_id: str = PID) -> dict[str, str]:
    return {"reference": f"Patient/{patient_id}"}


def coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def observation(
    name: str,
    system: str,
    code: str,
    when: str | None = "2024-01-01T10:00:00Z",
    patient_id: str = PID,
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid(name),
        "status": "final",
        "subject": ref(patient_id),
        "code": coding(system, code),
        **extra,
    }
    if when:
        resource["effectiveDateTime"] = when
    return resource


def lab(name: str, code: str, when: str, value: float, unit: str, **kw: Any) -> dict[str, Any]:
    quantity = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    return observation(name, LOINC, code, when, valueQuantity=quantity, **kw)


def patient_record() -> list[dict[str, Any]]:
    """One patient with data for every DATA_NEEDS key, plus decoys that must not match."""
    return [
        {"resourceType": "Patient", "id": PID, "gender": "female", "birthDate": "1952-04-01"},
        {"resourceType": "Patient", "id": OTHER_PID, "gender": "male", "birthDate": "1960-01-01"},
        # labs: several LOINC codes, distinct dates (newest first under _sort=-date)
        lab("anc", "751-8", "2024-03-01T08:00:00Z", 1.4, "10*9/L"),
        lab("plt", "777-3", "2024-03-05T08:00:00Z", 80, "10*9/L"),
        lab("bili", "1975-2", "2024-02-01T08:00:00Z", 1.1, "mg/dL"),
        lab("crea", "2160-0", "2024-01-15T08:00:00Z", 1.3, "mg/dL"),
        lab("crcl", "2164-2", "2023-12-01T08:00:00Z", 45, "mL/min"),
        lab("weight", "29463-7", "2024-02-20T08:00:00Z", 70, "kg"),
        lab("glucose", "2345-7", "2024-03-06T08:00:00Z", 5.5, "mmol/L"),  # decoy: other code
        lab("anc-other", "751-8", "2024-03-01T08:00:00Z", 0.4, "10*9/L", patient_id=OTHER_PID),
        # CTCAE grade as the value, whatever the term
        observation("grade2", NCIT, "C143752", valueCodeableConcept=coding(NCIT, "C41339")),
        observation("grade-decoy", NCIT, "C143752", valueCodeableConcept=coding(NCIT, "C99999")),
        # toxicity terms graded as integers
        observation("neuro", NCIT, "C143752", valueInteger=1),
        observation("rash", MEDDRA, "10037868", valueInteger=2),
        observation("pain", SNOMED, "247398009", valueInteger=3),
        observation("term-decoy", SNOMED, "22298006", valueInteger=1),
        {"resourceType": "AdverseEvent", "id": rid("ae"), "actuality": "actual",
         "subject": ref(), "event": coding(MEDDRA, "10029331")},
        {"resourceType": "AdverseEvent", "id": rid("ae-other"), "actuality": "actual",
         "subject": ref(OTHER_PID)},
        {"resourceType": "Condition", "id": rid("esrd"), "subject": ref(),
         "code": coding(SNOMED, "46177005")},
        {"resourceType": "Procedure", "id": rid("dialysis"), "status": "completed",
         "subject": ref(), "code": coding(SNOMED, "302497006")},
        {"resourceType": "Procedure", "id": rid("hd"), "status": "completed",
         "subject": ref(), "code": coding(SNOMED, "71192002")},
        {"resourceType": "Procedure", "id": rid("appendectomy"), "status": "completed",
         "subject": ref(), "code": coding(SNOMED, "80146002")},
        {"resourceType": "AllergyIntolerance", "id": rid("allergy"), "patient": ref(),
         "code": coding("http://www.nlm.nih.gov/research/umls/rxnorm", "1723735")},
        {"resourceType": "MedicationRequest", "id": rid("mr1"), "status": "active",
         "intent": "order", "subject": ref(),
         "medicationCodeableConcept": coding("http://www.nlm.nih.gov/research/umls/rxnorm",
                                             "1723740")},
        {"resourceType": "MedicationRequest", "id": rid("mr-other"), "status": "active",
         "intent": "order", "subject": ref(OTHER_PID),
         "medicationCodeableConcept": coding("http://www.nlm.nih.gov/research/umls/rxnorm",
                                             "1723740")},
    ]  # fmt: skip


EXPECTED: dict[str, list[str]] = {
    PATIENT: [PID],
    MEDICATION_REQUESTS: [rid("mr1")],
    LABS: [rid(n) for n in ("plt", "anc", "weight", "bili", "crea", "crcl")],  # newest first
    TOXICITY_GRADES: [rid("grade2")],
    # the graded ones carry the NCIt term code too
    TOXICITY_TERM_OBSERVATIONS: [
        rid(n) for n in ("neuro", "rash", "pain", "grade2", "grade-decoy")
    ],
    ADVERSE_EVENTS: [rid("ae")],
    CONDITIONS: [rid("esrd")],
    PROCEDURES: [rid("dialysis"), rid("hd")],
    ALLERGIES: [rid("allergy")],
}
ORDERED = {LABS}  # queries with _sort=-date


def query_for(key: str, patient_id: str = PID) -> str:
    need = next(need for need in DATA_NEEDS if need.key == key)
    return need.query.replace("{{context.patientId}}", patient_id)


def ids(resources: list[dict[str, Any]]) -> list[str]:
    return [resource["id"] for resource in resources]


@pytest.fixture
def loaded(clean_fhir_server: FhirServer) -> FhirServer:
    clean_fhir_server.load(patient_record())
    return clean_fhir_server


def test_metadata_is_a_r4_capability_statement(fhir_server: FhirServer) -> None:
    response = fhir_server.request("GET", "metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"].startswith("4.0")


def test_transaction_load_keeps_ids(clean_fhir_server: FhirServer) -> None:
    record = patient_record()
    result = clean_fhir_server.load(record)
    assert result["type"] == "transaction-response"
    assert len(result["entry"]) == len(record)
    for resource in record:
        response = clean_fhir_server.request("GET", f"{resource['resourceType']}/{resource['id']}")
        assert response.status_code == 200, response.text
        stored = response.json()
        assert stored["id"] == resource["id"]
        assert stored["meta"]["versionId"]


def test_read_missing_resource_is_404_operation_outcome(clean_fhir_server: FhirServer) -> None:
    response = clean_fhir_server.request("GET", f"Patient/{rid('nobody')}")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("key", [need.key for need in DATA_NEEDS])
def test_data_needs_query_returns_the_right_resources(loaded: FhirServer, key: str) -> None:
    query = query_for(key)
    if key == PATIENT:
        response = loaded.request("GET", query)
        assert response.status_code == 200, response.text
        assert [response.json()["id"]] == EXPECTED[key]
        return
    found = ids(loaded.search(query))
    if key == ADVERSE_EVENTS and not found and f"subject={PID}" in query:
        pytest.xfail(
            "Medplum matches a bare id only for reference parameters with ONE target type; "
            "AdverseEvent.subject has four, so use subject=Patient/{{context.patientId}}"
        )
    if key in ORDERED:
        assert found == EXPECTED[key]
    else:
        assert sorted(found) == sorted(EXPECTED[key])


def test_data_needs_queries_do_not_leak_other_patients(loaded: FhirServer) -> None:
    for need in DATA_NEEDS:
        if need.key == PATIENT:
            continue
        found = ids(loaded.search(query_for(need.key, OTHER_PID)))
        assert all("-p1" not in resource_id for resource_id in found), (need.key, found)
        assert not set(found) & set(EXPECTED[need.key]), need.key


def test_reference_with_type_prefix_works_for_multi_target_parameters(loaded: FhirServer) -> None:
    assert ids(loaded.search(f"AdverseEvent?subject=Patient/{PID}&_count=100")) == [rid("ae")]
    found = ids(loaded.search(f"Observation?subject=Patient/{PID}&code={LOINC}|751-8"))
    assert found == [rid("anc")]


def test_sort_by_date_descending_and_ascending(loaded: FhirServer) -> None:
    codes = ",".join(f"{LOINC}|{code}" for code in ("751-8", "777-3", "2160-0"))
    newest_first = ids(loaded.search(f"Observation?patient={PID}&code={codes}&_sort=-date"))
    oldest_first = ids(loaded.search(f"Observation?patient={PID}&code={codes}&_sort=date"))
    assert newest_first == [rid("plt"), rid("anc"), rid("crea")]
    assert oldest_first == list(reversed(newest_first))


def test_post_search_with_form_body_matches_get(loaded: FhirServer) -> None:
    query = query_for(LABS)
    resource_type, _, params = query.partition("?")
    response = loaded.request(
        "POST",
        f"{resource_type}/_search",
        data=params,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    assert [entry["resource"]["id"] for entry in bundle["entry"]] == EXPECTED[LABS]


def test_searchset_entries_have_full_urls(loaded: FhirServer) -> None:
    page = next(loaded.search_pages(query_for(CONDITIONS)))
    entry = page["entry"][0]
    assert entry["fullUrl"].endswith(f"/Condition/{rid('esrd')}")
    assert entry["search"]["mode"] == "match"


def _many_observations(count: int) -> list[dict[str, Any]]:
    return [
        lab(f"anc-{i:03d}", "751-8", f"2023-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z", 1.0, "10*9/L")
        for i in range(count)
    ]


def test_paging_follows_next_links(clean_fhir_server: FhirServer) -> None:
    clean_fhir_server.load(_many_observations(25))
    pages = list(clean_fhir_server.search_pages(f"Observation?patient={PID}&_count=10"))
    assert [len(page.get("entry", [])) for page in pages] == [10, 10, 5]
    assert all(page.get("total", 25) == 25 for page in pages)
    assert "next" not in {link["relation"] for link in pages[-1].get("link", [])}
    found = [entry["resource"]["id"] for page in pages for entry in page["entry"]]
    assert len(set(found)) == 25


def test_sorted_paging_keeps_the_order_across_pages(clean_fhir_server: FhirServer) -> None:
    clean_fhir_server.load(_many_observations(25))
    query = f"Observation?patient={PID}&code={LOINC}|751-8&_sort=-date&_count=7"
    paged = ids(clean_fhir_server.search(query))
    whole = ids(clean_fhir_server.search(query.replace("_count=7", "_count=100")))
    assert paged == whole
    assert len(paged) == 25


def test_default_page_size_is_twenty(local_fhir_server: FhirServerProcess) -> None:
    local_fhir_server.load(_many_observations(25))
    first = next(local_fhir_server.search_pages(f"Observation?patient={PID}"))
    assert len(first["entry"]) == 20
    assert any(link["relation"] == "next" for link in first["link"])


def test_max_page_size_forces_paging_of_data_needs_queries(
    local_fhir_server: FhirServerProcess,
) -> None:
    local_fhir_server.load(patient_record())
    local_fhir_server.configure(max_page_size=2)
    pages = list(local_fhir_server.search_pages(query_for(LABS)))
    assert len(pages) == 3
    assert [entry["resource"]["id"] for page in pages for entry in page["entry"]] == EXPECTED[LABS]
    local_fhir_server.reset()  # also restores the page size
    local_fhir_server.load(patient_record())
    assert len(list(local_fhir_server.search_pages(query_for(LABS)))) == 1


def test_create_assigns_the_id_and_update_versions(clean_fhir_server: FhirServer) -> None:
    created = clean_fhir_server.request(
        "POST", "Patient", json={"resourceType": "Patient", "id": "client-chosen"}
    )
    assert created.status_code == 201, created.text
    new_id = created.json()["id"]
    assert new_id != "client-chosen"
    assert f"/Patient/{new_id}/_history/" in created.headers["Location"]
    changed = {"resourceType": "Patient", "id": new_id, "gender": "other"}
    updated = clean_fhir_server.request("PUT", f"Patient/{new_id}", json=changed)
    assert updated.status_code == 200, updated.text
    version = created.json()["meta"]["versionId"]
    old = clean_fhir_server.request("GET", f"Patient/{new_id}/_history/{version}")
    assert old.status_code == 200
    assert "gender" not in old.json()
    assert clean_fhir_server.request("DELETE", f"Patient/{new_id}").status_code == 200
    assert clean_fhir_server.request("GET", f"Patient/{new_id}").status_code in (404, 410)


def test_reset_empties_the_store(local_fhir_server: FhirServerProcess) -> None:
    local_fhir_server.load(patient_record())
    local_fhir_server.reset()
    assert local_fhir_server.request("GET", f"Patient/{PID}").status_code == 404
    assert local_fhir_server.search(query_for(LABS)) == []


def test_bearer_token_is_enforced_and_start_up_is_fast() -> None:
    started = time.monotonic()
    with start_fhir_server(token="s3cret-token") as server:
        elapsed = time.monotonic() - started
        print(f"\nlocal FHIR server start-up: {elapsed:.2f}s")
        assert elapsed < 20
        url = f"{server.base_url}/Patient?_count=1"
        assert requests.get(url, timeout=10).status_code == 401
        wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        assert wrong.json()["resourceType"] == "OperationOutcome"
        assert server.request("GET", "Patient?_count=1").status_code == 200  # sends the token
        assert requests.get(f"{server.base_url}/metadata", timeout=10).status_code == 200
        server.load(patient_record())  # load and reset work with the token
        assert ids(server.search(query_for(CONDITIONS))) == [rid("esrd")]
        server.reset()
    assert not server.is_running()


def test_search_time_stays_small(loaded: FhirServer) -> None:
    started = time.monotonic()
    for need in DATA_NEEDS:
        if need.key == PATIENT:
            loaded.request("GET", query_for(need.key)).raise_for_status()
        else:
            loaded.search(query_for(need.key))
    elapsed = time.monotonic() - started
    print(f"all {len(DATA_NEEDS)} DATA_NEEDS queries: {elapsed * 1000:.0f} ms")
    assert elapsed < 5
