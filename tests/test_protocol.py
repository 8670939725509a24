"""The CDS Hooks 2.0 protocol layer as an EHR sees it: discovery, calls, errors, feedback, CORS."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from builders import PATIENT_ID, empty_prefetch, medication_request, order_sign_request
from cds_assertions import assert_conformant_response
from fhir.resources.R4B.medicationrequest import MedicationRequest
from flask.testing import FlaskClient

from cds_service.fixtures import load_scenarios

STU2_TOKENS = {
    "context.patientId",
    "context.encounterId",
    "context.userId",
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
}


def assert_operation_outcome(response: Any, status: int, words: str = "") -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    text = " ".join(issue.get("diagnostics", "") for issue in body["issue"])
    assert words.lower() in text.lower(), text
    assert "Traceback" not in text


def test_discovery_lists_the_three_services_with_stu2_prefetch(client: FlaskClient) -> None:
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    assert {sid: s["hook"] for sid, s in services.items()} == {
        "ixazomib-order-sign": "order-sign",
        "ixazomib-order-select": "order-select",
        "ixazomib-lab-result": "org.ixazomib-cds.lab-result",
    }
    for service in services.values():
        assert service["title"]
        assert service["description"]
        assert service["prefetch"]
        for template in service["prefetch"].values():
            assert set(re.findall(r"{{\s*([^}]+?)\s*}}", template)) <= STU2_TOKENS


def test_order_for_another_drug_gets_an_empty_card_list(client: FlaskClient) -> None:
    order = medication_request(rxnorm="342369", display="lenalidomide", dose_mg=25)
    response = client.post("/cds-services/ixazomib-order-sign", json=order_sign_request(order))
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_a_malformed_resource_the_rules_do_not_need_does_not_fail_the_call(
    client: FlaskClient,
) -> None:
    prefetch = empty_prefetch()
    prefetch["conditions"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "broken",
                    "clinicalStatus": 42,
                    "onsetDateTime": "last tuesday",
                }
            }
        ],
    }
    order = medication_request(rxnorm="342369", display="lenalidomide", dose_mg=25)
    response = client.post(
        "/cds-services/ixazomib-order-sign", json=order_sign_request(order, prefetch=prefetch)
    )
    assert response.status_code == 200
    assert_conformant_response(response.get_json())


def test_ixazomib_order_with_empty_record_is_never_silent(client: FlaskClient) -> None:
    response = client.post("/cds-services/ixazomib-order-sign", json=order_sign_request())
    assert response.status_code == 200
    body = response.get_json()
    assert_conformant_response(body)
    assert body["cards"], "an ixazomib order with no labs at all must not pass silently"


def test_unknown_service_is_404(client: FlaskClient) -> None:
    response = client.post("/cds-services/no-such-service", json=order_sign_request())
    assert_operation_outcome(response, 404, "no CDS service")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"\xff\xfe{}", "application/json", 400, "UTF-8"),
        (b"{}", "text/plain", 415, "application/json"),
        (b"[1, 2]", "application/json", 400, "not a valid CDS Hooks"),
        (
            b'{"hook": "order-sign", "hookInstance": "not-a-uuid", "context": {}}',
            "application/json",
            400,
            "hookInstance",
        ),
        (
            b'{"hook": "order-sign", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea", '
            b'"context": {"patientId": 12}}',
            "application/json",
            400,
            "patientId",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "JSON"),
        (b'{"a": NaN}', "application/json", 400, "NaN"),
    ],
)
def test_bad_requests_get_a_4xx_operation_outcome(
    client: FlaskClient, body: bytes, content_type: str, status: int, words: str
) -> None:
    response = client.post(
        "/cds-services/ixazomib-order-sign", data=body, content_type=content_type
    )
    assert_operation_outcome(response, status, words)


def test_hook_that_does_not_match_the_service_is_400(client: FlaskClient) -> None:
    body = order_sign_request()
    response = client.post("/cds-services/ixazomib-order-select", json=body)
    assert_operation_outcome(response, 400, "answers the hook 'order-select'")


def test_order_select_needs_selections(client: FlaskClient) -> None:
    body = order_sign_request(hook="order-select")
    response = client.post("/cds-services/ixazomib-order-select", json=body)
    assert_operation_outcome(response, 400, "selections")


def test_fhir_authorization_without_fhir_server_is_400(client: FlaskClient) -> None:
    body = order_sign_request(
        fhirAuthorization={
            "access_token": "secret-token",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "cds",
        }
    )
    response = client.post("/cds-services/ixazomib-order-sign", json=body)
    assert_operation_outcome(response, 400, "fhirServer is required")
    assert "secret-token" not in response.get_data(as_text=True)


def test_required_data_neither_prefetched_nor_fetchable_is_412(client: FlaskClient) -> None:
    response = client.post(
        "/cds-services/ixazomib-order-sign", json=order_sign_request(prefetch={})
    )
    assert_operation_outcome(response, 412, "medicationRequests")


def test_oversized_body_is_413_with_the_limit(client: FlaskClient) -> None:
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    response = client.post(
        "/cds-services/ixazomib-order-sign",
        data=b" " * (limit + 1),
        content_type="application/json",
    )
    assert_operation_outcome(response, 413, str(limit))


def test_cors_preflight_needs_no_token(client: FlaskClient) -> None:
    response = client.options(
        "/cds-services/ixazomib-order-sign",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert response.status_code in (200, 204)
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert response.headers["Access-Control-Allow-Origin"]


def feedback_body(card: str, outcome: str = "accepted", **extra: Any) -> dict[str, Any]:
    entry = {"card": card, "outcome": outcome, "outcomeTimestamp": "2026-11-21T10:00:00Z"}
    entry.update(extra)
    return {"feedback": [entry]}


def test_feedback_is_stored_once_however_often_it_is_reported(client: FlaskClient) -> None:
    card = str(uuid.uuid4())
    body = feedback_body(card, acceptedSuggestions=[{"id": str(uuid.uuid4())}])
    first = client.post("/cds-services/ixazomib-order-sign/feedback", json=body)
    again = client.post("/cds-services/ixazomib-order-sign/feedback", json=body)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == {"stored": 1, "duplicates": 0}
    assert again.get_json() == {"stored": 0, "duplicates": 1}
    overridden = feedback_body(
        card,
        "overridden",
        overrideReason={
            "reason": {
                "system": "http://example.org/reasons",
                "code": "aware",
                "display": "Prescriber already aware",
            },
            "userComment": "discussed",
        },
    )
    assert client.post(
        "/cds-services/ixazomib-order-sign/feedback", json=overridden
    ).get_json() == {"stored": 1, "duplicates": 0}


@pytest.mark.parametrize(
    "body",
    [
        {"feedback": []},
        {"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": "2026-11-21T10:00Z"}]},
        {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": "yesterday"}]},
        *(
            {"feedback": [{"card": "x", "outcome": "accepted", "outcomeTimestamp": not_rfc3339}]}
            for not_rfc3339 in ("2026-12-01", "20261201T100000Z", "2026-W48-2T10:00:00Z")
        ),
        {"nothing": 1},
    ],
)
def test_invalid_feedback_is_400(client: FlaskClient, body: dict[str, Any]) -> None:
    response = client.post("/cds-services/ixazomib-order-sign/feedback", json=body)
    assert_operation_outcome(response, 400, "feedback")


def test_feedback_for_unknown_service_is_404(client: FlaskClient) -> None:
    response = client.post("/cds-services/nope/feedback", json=feedback_body("x"))
    assert_operation_outcome(response, 404)


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200


def test_unknown_path_and_wrong_method_are_operation_outcomes(client: FlaskClient) -> None:
    assert_operation_outcome(client.get("/nowhere"), 404)
    assert_operation_outcome(client.delete("/cds-services"), 405)


def test_orders_of_other_drugs_need_no_patient_data(client: FlaskClient) -> None:
    """Nothing is fetched (so no 412) when the hook fired only for another drug's order."""
    order = medication_request(rxnorm="342369", display="lenalidomide", dose_mg=25)
    response = client.post(
        "/cds-services/ixazomib-order-sign", json=order_sign_request(order, prefetch={})
    )
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def _lab_result_request(subject: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """A real lab-result call (new platelets 24 x10^9/L: a hold) with the new results' subject
    replaced (``None`` removes it)."""
    scenario = next(s for s in load_scenarios() if s.id == "lab-platelets-1st-onset")
    body = scenario.cds_request(prefetch=True)
    for entry in body["context"]["observations"]["entry"]:
        entry["resource"].pop("subject", None)
        if subject is not None:
            entry["resource"]["subject"] = subject
    return scenario.patient_id, body


def test_a_new_result_about_another_patient_is_400_naming_both(client: FlaskClient) -> None:
    """Another patient's low platelets must not hold this patient's ixazomib."""
    patient, body = _lab_result_request({"reference": "Patient/someone-else"})
    response = client.post("/cds-services/ixazomib-lab-result", json=body)
    assert_operation_outcome(response, 400, "Patient/someone-else")
    assert_operation_outcome(response, 400, f"Patient/{patient}")
    assert_operation_outcome(response, 400, "Observation/lab-platelets-1st-onset-plt-new")
    absolute = {"reference": "https://ehr.example/fhir/Patient/someone-else/_history/2"}
    response = client.post(
        "/cds-services/ixazomib-lab-result", json=_lab_result_request(absolute)[1]
    )
    assert_operation_outcome(response, 400, "Patient/someone-else")


@pytest.mark.parametrize(
    "subject",
    [
        None,
        {"reference": "Patient/lab-platelets-1st-onset"},
        {"reference": "https://ehr.example/fhir/Patient/lab-platelets-1st-onset"},
        {"reference": "urn:uuid:7f8e9a10-0000-4000-8000-000000000001"},
        {"display": "the patient"},
        {"reference": 12},
    ],
)
def test_a_new_result_whose_subject_is_this_patient_or_cannot_be_told_is_read(
    client: FlaskClient, subject: dict[str, Any] | None
) -> None:
    _, body = _lab_result_request(subject)
    response = client.post("/cds-services/ixazomib-lab-result", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert_conformant_response(response.get_json())


def test_a_draft_order_about_another_patient_is_400_naming_both(client: FlaskClient) -> None:
    order = medication_request(order_id="draft-other")
    order["subject"] = {"reference": "Patient/someone-else"}
    response = client.post("/cds-services/ixazomib-order-sign", json=order_sign_request(order))
    assert_operation_outcome(response, 400, "MedicationRequest/draft-other")
    assert_operation_outcome(response, 400, "Patient/someone-else")
    assert_operation_outcome(response, 400, f"Patient/{PATIENT_ID}")
    order["subject"] = {"reference": f"http://ehr.example/fhir/Patient/{PATIENT_ID}"}
    response = client.post("/cds-services/ixazomib-order-sign", json=order_sign_request(order))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_405_names_the_allowed_methods(client: FlaskClient) -> None:
    response = client.get("/cds-services/ixazomib-order-sign")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"POST", "OPTIONS"}
    assert response.get_json()["resourceType"] == "OperationOutcome"


def _order_select_request(selection: str) -> dict[str, Any]:
    scenario = next(s for s in load_scenarios() if s.id == "hep-moderate-order-select")
    request = scenario.cds_request(prefetch=True)
    body: dict[str, Any] = json.loads(json.dumps(request, default=str))
    body["context"]["selections"] = [selection]
    return body


def test_order_select_reads_an_absolute_selection_as_the_draft_it_names(
    client: FlaskClient,
) -> None:
    draft = "MedicationRequest/hep-moderate-order-select-ixa-draft"
    body = _order_select_request(f"https://ehr.example.org/fhir/{draft}")
    response = client.post("/cds-services/ixazomib-order-select", json=body)
    assert response.status_code == 200
    actions = [
        c["extension"]["org.ixazomib-cds.recommendation"]["ixazomib"]["action"]
        for c in response.get_json()["cards"]
    ]
    assert "start-reduced" in actions


def test_order_select_naming_no_draft_is_400_not_silence(client: FlaskClient) -> None:
    body = _order_select_request("MedicationRequest/not-among-the-drafts")
    response = client.post("/cds-services/ixazomib-order-select", json=body)
    assert_operation_outcome(response, 400, "not among context.draftOrders")


@pytest.mark.parametrize(
    ("service", "scenario_id"),
    [
        ("ixazomib-order-sign", "hep-moderate"),
        ("ixazomib-order-select", "hep-moderate-order-select"),
    ],
)
def test_the_suggested_order_says_how_to_take_ixazomib(
    client: FlaskClient, service: str, scenario_id: str
) -> None:
    """What the EHR files when the clinician accepts: the new dose and the label's
    administration instructions (section 2.1), in a valid FHIR R4 MedicationRequest."""
    scenario = next(s for s in load_scenarios() if s.id == scenario_id)
    body = json.loads(json.dumps(scenario.cds_request(prefetch=True), default=str))
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == 200
    (card,) = [
        c
        for c in response.get_json()["cards"]
        if c["extension"]["org.ixazomib-cds.recommendation"]["ixazomib"]["action"]
        == "start-reduced"
    ]
    (action,) = card["suggestions"][0]["actions"]
    MedicationRequest.model_validate(action["resource"])
    (dosage,) = action["resource"]["dosageInstruction"]
    assert dosage["doseAndRate"][0]["doseQuantity"]["value"] == 3
    assert "empty stomach" in dosage["patientInstruction"]
    assert "72 hours" in dosage["patientInstruction"]
    assert {
        (coding["system"], coding["code"])
        for extra in dosage["additionalInstruction"]
        for coding in extra["coding"]
    } == {("http://snomed.info/sct", "418693002"), ("http://snomed.info/sct", "717154004")}


def test_an_order_hook_without_draft_orders_says_they_are_required(client: FlaskClient) -> None:
    body = _order_select_request("MedicationRequest/a")
    body["context"]["selections"] = [f"MedicationRequest/{n}" for n in "abcde"]
    del body["context"]["draftOrders"]
    response = client.post("/cds-services/ixazomib-order-select", json=body)
    assert_operation_outcome(
        response,
        400,
        "the selected orders MedicationRequest/a, MedicationRequest/b, MedicationRequest/c "
        "and 2 more were not checked",
    )
    body["hook"] = "order-sign"
    del body["context"]["selections"]
    response = client.post("/cds-services/ixazomib-order-sign", json=body)
    assert_operation_outcome(response, 400, "context.draftOrders is required for order-sign")
