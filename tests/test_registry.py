"""The service registry (cds_service.services): every part of the product takes its services
from it, so that a new service is one module and one line in ``SERVICES``.

Discovery, the routes, the metrics labels, the clinical scenarios, the OpenAPI description and
the README's table of services are each checked against the registry; a service added to a
registry is then advertised, called with its own context reader and data needs, decided and
rendered by its own functions and counted under its own id, with nothing else changed.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from reliability.support import spec

from cds_service import metrics
from cds_service.app import create_app
from cds_service.config import Config
from cds_service.fixtures import load_scenarios
from cds_service.rules.data_needs import DATA_NEEDS
from cds_service.rules.engine import Screened
from cds_service.rules.facts import MedicationFacts
from cds_service.rules.inputs import HookCall, JsonDict, PatientRecord
from cds_service.rules.prefetch_keys import PATIENT
from cds_service.rules.settings import RuleSettings
from cds_service.services import SERVICES, CdsService, HookContext, Registry, Screening
from cds_service.services.context import read_patient_id

# -- the registry against each part that lists services ----------------------------------------


def test_discovery_lists_the_registry_in_order_with_each_services_data_needs(
    client: FlaskClient,
) -> None:
    listed = client.get("/cds-services").get_json()["services"]
    assert [(s["id"], s["hook"]) for s in listed] == [(s.id, s.hook) for s in SERVICES.values()]
    for entry, service in zip(listed, SERVICES.values(), strict=True):
        assert entry["title"] == service.title
        assert entry["description"] == service.description
        assert entry["prefetch"] == {need.key: need.query for need in service.data_needs}


def test_the_openapi_service_ids_are_the_registrys() -> None:
    document = spec()
    assert document["components"]["schemas"]["ServiceId"]["enum"] == list(SERVICES)
    for service in SERVICES.values():
        operation = document["paths"][f"/cds-services/{service.id}"]["post"]
        name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = document["components"]["schemas"][name.rsplit("/", 1)[1]]
        hooks = [part["properties"]["hook"]["const"] for part in schema["allOf"][1:]]
        assert hooks == [service.hook], service.id
    described = {p.removeprefix("/cds-services/") for p in document["paths"]}
    assert {p for p in described if "/" not in p and p.startswith("ixazomib-")} <= set(SERVICES)


def test_every_scenario_names_a_service_of_the_registry_and_its_hook() -> None:
    scenarios = load_scenarios()
    assert {s.service for s in scenarios} == set(SERVICES)  # each service has scenarios
    for scenario in scenarios:
        service = SERVICES.get(scenario.service)
        assert service is not None
        request = scenario.cds_request(prefetch=True)
        assert request["hook"] == service.hook
        assert set(request["prefetch"]) == {need.key for need in service.data_needs}
        # the resources the hook carries in its context are those of the service's Bundles
        assert scenario.context_resources() == [
            entry["resource"]
            for key in service.context_bundles
            for entry in scenario.context[key].get("entry", [])
        ]


def test_the_readmes_services_table_is_the_registry() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Services\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|", section, flags=re.MULTILINE)
    assert rows == [(s.id, s.hook) for s in SERVICES.values()]


def test_a_registry_refuses_an_id_declared_twice() -> None:
    first = next(iter(SERVICES.values()))
    with pytest.raises(ValueError, match=first.id):
        Registry(*SERVICES.values(), first)


def test_a_service_that_screens_with_data_it_does_not_need_is_refused() -> None:
    lab_result = SERVICES["ixazomib-lab-result"]
    only_the_patient = tuple(need for need in DATA_NEEDS if need.key == PATIENT)
    with pytest.raises(ValueError, match="medicationRequests"):
        dataclasses.replace(lab_result, data_needs=only_the_patient)


def test_a_hook_no_service_answers_is_not_found() -> None:
    with pytest.raises(KeyError):
        SERVICES.for_hook("patient-view-of-nobody")


# -- a new service: one declaration, one line ----------------------------------------------------

NEW_HOOK = "org.example.patient-check"
NEW_ID = "example-patient-check"
SEEN: list[tuple[HookCall, PatientRecord]] = []


def _read_new_context(context: JsonDict) -> HookContext:
    return HookContext(read_patient_id(context, user_required=False))


def _decide_new(
    call: HookCall,
    record: PatientRecord,
    settings: RuleSettings,
    medications: MedicationFacts | None,
) -> list[str]:
    SEEN.append((call, record))
    return [f"Patient/{p['id']}" for p in record.resources[PATIENT]]


def _render_new(seen: list[str]) -> list[JsonDict]:
    return [
        {"uuid": str(uuid.uuid4()), "summary": f"Seen {who}", "indicator": "info", "source": {}}
        for who in seen
    ]


def _screen_new(call: HookCall, record: PatientRecord, settings: RuleSettings) -> Screened:
    return Screened(rest_needed=True)


NEW_SERVICE = CdsService(
    id=NEW_ID,
    hook=NEW_HOOK,
    title="An example service",
    description="Reads the Patient only.",
    read_context=_read_new_context,
    decide=_decide_new,
    render=_render_new,
    data_needs=tuple(need for need in DATA_NEEDS if need.key == PATIENT),
    screening=Screening(screen=_screen_new),
)


@pytest.fixture
def app_with_new_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    registry = Registry(*SERVICES.values(), NEW_SERVICE)  # the one line a new service adds
    monkeypatch.setattr("cds_service.services.SERVICES", registry)
    monkeypatch.setattr("cds_service.protocol.routes.SERVICES", registry)
    app = create_app(Config.for_testing())
    yield app
    app.extensions["ixazomib_cds"].store.close()


def _new_request(**prefetch: Any) -> JsonDict:
    return {
        "hook": NEW_HOOK,
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": "p-new"},
        "prefetch": prefetch,
    }


def test_a_new_service_is_advertised_called_decided_and_counted(
    app_with_new_service: Flask,
) -> None:
    client = app_with_new_service.test_client()
    listed = client.get("/cds-services").get_json()["services"]
    assert listed[-1]["id"] == NEW_ID
    assert listed[-1]["prefetch"] == {PATIENT: "Patient/{{context.patientId}}"}

    SEEN.clear()
    patient = {"resourceType": "Patient", "id": "p-new", "birthDate": "1950-01-01"}
    # Only the service's own data need is prefetched: with every service's needs this would
    # be a 412 (no medication history, no labs, no FHIR server).
    response = client.post(f"/cds-services/{NEW_ID}", json=_new_request(patient=patient))
    assert response.status_code == 200, response.get_json()
    assert [card["summary"] for card in response.get_json()["cards"]] == ["Seen Patient/p-new"]
    [(call, record)] = SEEN
    assert (call.hook, call.service_id, call.patient_id) == (NEW_HOOK, NEW_ID, "p-new")
    assert record.resources == {PATIENT: [patient]}

    wrong_hook = {**_new_request(patient=patient), "hook": "order-sign"}
    assert client.post(f"/cds-services/{NEW_ID}", json=wrong_hook).status_code == 400
    body, _ = metrics.metrics_response()
    assert f'cds_requests_total{{service="{NEW_ID}",status="200"}}'.encode() in body
    assert f'cds_requests_total{{service="{NEW_ID}",status="400"}}'.encode() in body


def test_the_new_services_required_data_is_its_own(app_with_new_service: Flask) -> None:
    client = app_with_new_service.test_client()
    response = client.post(f"/cds-services/{NEW_ID}", json=_new_request())
    assert response.status_code == 412
    details = [issue["diagnostics"] for issue in response.get_json()["issue"]]
    assert any("patient (Patient" in d for d in details), details
    assert not any("medicationRequests" in d for d in details), details
