"""Every clinical scenario, loaded into a real FHIR server and run twice: once with prefetch
filled as an EHR fills it (the service's own discovery templates run against the server) and
once with no prefetch at all (the service fetches). Both must give the same advice, and the
advice the scenario expects."""

from __future__ import annotations

from typing import Any

import pytest
from fhirserver import FhirServer, FhirServerProcess
from flask.testing import FlaskClient
from scenario_checks import check, describe_cards

from cds_service.fixtures import Scenario, load_scenarios

pytestmark = pytest.mark.integration
RECOMMENDATION = "org.ixazomib-cds.recommendation"

# Left out: scenarios whose point is a prefetch key the EHR failed to fill and a server that
# fails too, and scenarios whose client sends no fhirServer; tests/test_scenarios.py runs them.
SCENARIOS = [s for s in load_scenarios() if not s.prefetch_failures and s.send_fhir_server]


def prefetch_from_server(
    client: FlaskClient, server: FhirServer, scenario: Scenario
) -> dict[str, Any]:
    """What an EHR sends: each discovery template, filled in and run against its server."""
    services = client.get("/cds-services").get_json()["services"]
    templates = next(s for s in services if s["id"] == scenario.service)["prefetch"]
    prefetch: dict[str, Any] = {}
    for key, template in templates.items():
        query = template.replace("{{context.patientId}}", scenario.patient_id)
        if "?" in query:
            resources = server.search(query)
            prefetch[key] = {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r} for r in resources],
            }
        else:
            response = server.request("GET", query)
            prefetch[key] = response.json() if response.status_code == 200 else None
    return prefetch


def advice(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    found = []
    for card in body["cards"]:
        rec = card.get("extension", {}).get(RECOMMENDATION)
        if rec:
            found.append(
                (
                    rec["rule"],
                    rec["ixazomib"]["action"],
                    rec["ixazomib"].get("doseMg"),
                    (rec.get("lenalidomide") or {}).get("action"),
                )
            )
    return sorted(found, key=repr)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_same_advice_with_and_without_prefetch(
    scenario: Scenario, fhir_server: FhirServer, client: FlaskClient
) -> None:
    if isinstance(fhir_server, FhirServerProcess):
        fhir_server.reset()
    fhir_server.load(scenario.transaction_bundle())
    url = f"/cds-services/{scenario.service}"

    with_prefetch = scenario.cds_request(prefetch=False, fhir_server=fhir_server.base_url)
    with_prefetch["prefetch"] = prefetch_from_server(client, fhir_server, scenario)
    without_prefetch = scenario.cds_request(prefetch=False, fhir_server=fhir_server.base_url)

    prefetched = client.post(url, json=with_prefetch)
    fetched = client.post(url, json=without_prefetch)
    assert prefetched.status_code == fetched.status_code == 200, fetched.get_data(as_text=True)
    assert advice(prefetched.get_json()) == advice(fetched.get_json())
    problems = check(scenario, fetched.get_json())
    assert not problems, f"{scenario.id}: {problems}\n" + describe_cards(
        fetched.get_json()["cards"]
    )
