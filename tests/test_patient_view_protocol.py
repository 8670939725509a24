"""The patient-view service as an EHR (or the CDS Hooks Sandbox's Patient View) calls it: the
standard hook's context, the same prefetch templates as the other services, one course card,
silence for a patient not on ixazomib, and the audit trail and feedback of its card."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from builders import PATIENT_ID, empty_prefetch
from cds_assertions import assert_conformant_response, recommendations
from flask import Flask
from flask.testing import FlaskClient

from cds_service.fixtures import Scenario, load_scenarios

URL = "/cds-services/ixazomib-patient-view"
SCENARIOS = {s.id: s for s in load_scenarios() if s.service == "ixazomib-patient-view"}


def _request(context: dict[str, Any], prefetch: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": context,
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def _post(client: FlaskClient, scenario: Scenario) -> dict[str, Any]:
    response = client.post(URL, json=scenario.cds_request())
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    assert_conformant_response(body)
    return body


def test_discovery_offers_patient_view_with_the_same_prefetch(client: FlaskClient) -> None:
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    view = services["ixazomib-patient-view"]
    assert view["hook"] == "patient-view"
    assert view["title"]
    assert view["description"]
    assert view["prefetch"] == services["ixazomib-order-sign"]["prefetch"]


def test_a_patient_on_ixazomib_gets_one_course_card(client: FlaskClient) -> None:
    body = _post(client, SCENARIOS["pv-reduction-history"])
    (card,) = body["cards"]
    assert card["indicator"] == "info"
    assert card["summary"].startswith("Ixazomib 3 mg, cycle 4 day 11")
    assert "lenalidomide 25 mg -> 20 mg" in card["detail"]
    assert "ixazomib 4 mg -> 3 mg" in card["detail"]
    assert "**How to take ixazomib (label, section 2.1):**" in card["detail"]
    assert recommendations(body) == []  # an overview without advice


def test_a_hold_in_force_is_a_critical_card_with_its_recommendation(client: FlaskClient) -> None:
    body = _post(client, SCENARIOS["pv-hold-in-force"])
    (card,) = body["cards"]
    assert card["indicator"] == "critical"
    assert recommendations(body) == [
        {
            "rule": "platelets-below-30k",
            "ixazomib": {"action": "hold"},
            "lenalidomide": {"action": "hold"},
        }
    ]
    assert "until platelets >= 30,000/mm3; latest 22,000/mm3 on" in card["detail"]


def test_a_patient_not_on_ixazomib_gets_no_card(client: FlaskClient) -> None:
    assert _post(client, SCENARIOS["pv-not-on-ixazomib"]) == {"cards": []}


def test_the_sandbox_context_without_an_encounter_is_read(client: FlaskClient) -> None:
    """The hook's context: userId and patientId required, encounterId optional."""
    body = _request({"userId": "Practitioner/example", "patientId": PATIENT_ID}, empty_prefetch())
    response = client.post(URL, json=body)
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}  # no orders on record: not on ixazomib


def test_patient_view_without_a_user_is_400(client: FlaskClient) -> None:
    response = client.post(URL, json=_request({"patientId": PATIENT_ID}, empty_prefetch()))
    assert response.status_code == 400
    assert "context.userId" in response.get_data(as_text=True)


def test_another_hook_at_the_patient_view_service_is_400(client: FlaskClient) -> None:
    body = _request({"userId": "Practitioner/x", "patientId": PATIENT_ID}, empty_prefetch())
    body["hook"] = "order-sign"
    response = client.post(URL, json=body)
    assert response.status_code == 400
    assert "patient-view" in response.get_data(as_text=True)


def test_required_data_neither_prefetched_nor_fetchable_is_412(client: FlaskClient) -> None:
    response = client.post(URL, json=_request({"userId": "Practitioner/x", "patientId": "p"}))
    assert response.status_code == 412
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_the_course_card_is_audited_and_takes_feedback(app: Flask, client: FlaskClient) -> None:
    (card,) = _post(client, SCENARIOS["pv-reduction-history"])["cards"]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "outcomeTimestamp": "2026-12-04T10:00:00Z",
            }
        ]
    }
    response = client.post(f"{URL}/feedback", json=feedback)
    assert response.status_code == 200
    assert response.get_json() == {"stored": 1, "duplicates": 0}
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'service="ixazomib-patient-view"' in metrics


ALL_SCENARIOS = load_scenarios()


@pytest.mark.parametrize("scenario", ALL_SCENARIOS, ids=[s.id for s in ALL_SCENARIOS])
def test_every_scenario_record_opens_as_at_most_one_conformant_card(
    client: FlaskClient, scenario: Scenario
) -> None:
    """Each clinical scenario's record (Epic-style dates, malformed elements, every coding),
    opened in patient-view: 200, one course card or none, never a failure."""
    body = scenario.cds_request()
    body["hook"] = "patient-view"
    body["context"] = {
        "userId": "Practitioner/onc-hartmann",
        "patientId": scenario.patient_id,
        "encounterId": f"{scenario.patient_id}-enc",
    }
    response = client.post(URL, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()
    assert_conformant_response(answer)
    assert len(answer["cards"]) <= 1
    for card in answer["cards"]:
        assert "**How to take ixazomib (label, section 2.1):**" in card["detail"]
