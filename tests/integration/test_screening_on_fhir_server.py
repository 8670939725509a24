"""The lab-result and patient-view services screen with the medication list: what the real FHIR
server (Medplum, started locally) is asked for, counted by the server itself.

A lab result or an opened chart of a patient who takes no ixazomib is answered from the
medication list alone: the server sees the MedicationRequest search at most, never a lab,
adverse event, condition, procedure, allergy or Patient query. A patient on ixazomib gets the
whole record fetched and decided as before; an order whose Medication the server cannot give
may be ixazomib, so the whole record is fetched for it too.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fhirserver import FhirServerProcess
from flask.testing import FlaskClient
from scenario_checks import check, describe_cards

from cds_service.fixtures import Scenario, load_scenarios
from cds_service.rules.prefetch_keys import LABS, MEDICATION_REQUESTS

pytestmark = pytest.mark.integration
SCENARIOS = {s.id: s for s in load_scenarios()}
# What no call about a patient off ixazomib may ask the server for.
REST_OF_THE_RECORD = ("Observation", "AdverseEvent", "Condition", "Procedure", "Allergy", "Patient")


def _post(client: FlaskClient, scenario: Scenario, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"/cds-services/{scenario.service}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer: dict[str, Any] = response.get_json()
    return answer


def _loaded(server: FhirServerProcess, scenario: Scenario) -> FhirServerProcess:
    server.load(scenario.transaction_bundle())
    server.forget_requests()
    return server


def _asked_for(server: FhirServerProcess) -> list[str]:
    """The resource types (or Type/id reads) the server was asked for, in order."""
    return [line.split(" ", 1)[1].removeprefix("/fhir/R4/") for line in server.requests_seen()]


def _rest_asked(asked: list[str]) -> list[str]:
    return [query for query in asked if query.startswith(REST_OF_THE_RECORD)]


@pytest.mark.parametrize("scenario_id", ["lab-no-ixazomib-history", "pv-not-on-ixazomib"])
def test_off_ixazomib_without_prefetch_only_the_medication_list_is_fetched(
    local_fhir_server: FhirServerProcess, client: FlaskClient, scenario_id: str
) -> None:
    scenario = SCENARIOS[scenario_id]
    server = _loaded(local_fhir_server, scenario)
    answer = _post(
        client, scenario, scenario.cds_request(prefetch=False, fhir_server=server.base_url)
    )
    assert answer == {"cards": []}
    asked = _asked_for(server)
    assert [query.split("?")[0] for query in asked] == ["MedicationRequest"], asked


@pytest.mark.parametrize("scenario_id", ["lab-no-ixazomib-history", "pv-not-on-ixazomib"])
def test_off_ixazomib_with_the_medication_list_prefetched_nothing_is_fetched(
    local_fhir_server: FhirServerProcess, client: FlaskClient, scenario_id: str
) -> None:
    """Only the medication list prefetched (no labs, no patient...), fhirServer sent: the
    server is not asked for anything."""
    scenario = SCENARIOS[scenario_id]
    server = _loaded(local_fhir_server, scenario)
    body = scenario.cds_request(prefetch=True, fhir_server=server.base_url)
    body["prefetch"] = {MEDICATION_REQUESTS: body["prefetch"][MEDICATION_REQUESTS]}
    assert _post(client, scenario, body) == {"cards": []}
    assert server.requests_seen() == []


@pytest.mark.parametrize("scenario_id", ["lab-platelets-1st-onset", "pv-hold-in-force"])
def test_on_ixazomib_the_whole_record_is_fetched_and_decided(
    local_fhir_server: FhirServerProcess, client: FlaskClient, scenario_id: str
) -> None:
    scenario = SCENARIOS[scenario_id]
    server = _loaded(local_fhir_server, scenario)
    body = scenario.cds_request(prefetch=False, fhir_server=server.base_url)
    answer = _post(client, scenario, body)
    problems = check(scenario, answer)
    assert not problems, f"{problems}\n{describe_cards(answer['cards'])}"
    asked = _asked_for(server)
    assert asked[0].startswith("MedicationRequest?"), asked  # the screen's, first
    fetched = {query.split("?")[0].split("/")[0] for query in asked}
    assert {"Patient", "Observation", "AdverseEvent", "Condition"} <= fetched, asked


def test_without_labs_in_the_prefetch_a_patient_on_ixazomib_gets_them_fetched(
    local_fhir_server: FhirServerProcess, client: FlaskClient
) -> None:
    scenario = SCENARIOS["pv-hold-in-force"]
    server = _loaded(local_fhir_server, scenario)
    body = scenario.cds_request(prefetch=True, fhir_server=server.base_url)
    del body["prefetch"][LABS]
    answer = _post(client, scenario, body)
    assert not check(scenario, answer), describe_cards(answer["cards"])
    assert [query.split("?")[0] for query in _asked_for(server)] == ["Observation"]


def test_an_order_whose_medication_the_server_cannot_give_gets_the_whole_record(
    local_fhir_server: FhirServerProcess, client: FlaskClient
) -> None:
    """An active order whose Medication is not on the server may be ixazomib: not "takes no
    ixazomib". The whole record is fetched and the answer says the order's drug is unknown."""
    scenario = copy.deepcopy(SCENARIOS["lab-no-ixazomib-history"])
    order = next(r for r in scenario.resources if r["resourceType"] == "MedicationRequest")
    order.pop("medicationCodeableConcept")
    order["status"] = "active"
    order["medicationReference"] = {"reference": "Medication/not-on-the-server"}
    server = _loaded(local_fhir_server, scenario)
    answer = _post(
        client, scenario, scenario.cds_request(prefetch=False, fhir_server=server.base_url)
    )
    assert any(
        "Medication/not-on-the-server" in (card.get("detail") or "") for card in answer["cards"]
    ), describe_cards(answer["cards"])
    asked = _asked_for(server)
    assert "Medication/not-on-the-server" in asked
    assert _rest_asked(asked), asked  # labs and the rest were fetched
