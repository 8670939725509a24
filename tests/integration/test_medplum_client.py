"""Medplum's CDS Hooks client (``@medplum/core``: ``MedplumClient.getCdsServices``,
``buildCdsRequest``, ``MedplumClient.callCdsService``) as a second real client: a Node script
drives the real service (``ixazomib-cds serve``) with the prefetch Medplum builds from the
Medplum FHIR server holding a scenario's record.

Medplum sends no CDS JWT, so the service runs with ``CDS_AUTH=disabled``. It sends no
``fhirServer`` either: the prefetch is all the service gets. Medplum sets a prefetch key to
``null`` when it cannot resolve a template token; every template of this service uses only
``{{context.patientId}}``, which a request must carry, so such nulls come only with a request
the service refuses (README, "Prefetch and null").
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fhirserver import FhirServerProcess, ensure_installed
from live_server import LiveService, start_service
from scenario_checks import check, describe_cards

from cds_service.fixtures import Scenario, load_scenarios

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parent / "medplum_cds_client.mjs"
USER = {"resourceType": "Practitioner", "id": "onc-hartmann"}


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    running = start_service(workers=1, auth=False)
    try:
        yield running
    finally:
        running.stop()


def scenario(scenario_id: str) -> Scenario:
    return next(s for s in load_scenarios() if s.id == scenario_id)


def run_medplum(
    fhir: FhirServerProcess, service: LiveService, service_id: str, context: dict[str, Any],
    tmp_path: Path,
) -> dict[str, Any]:  # fmt: skip
    ensure_installed()
    node = shutil.which("node")
    assert node is not None
    base, _, path = fhir.base_url.partition("/fhir/")
    arguments = {
        "fhirBaseUrl": base + "/",
        "fhirUrlPath": "fhir/" + path,
        "cdsBaseUrl": service.base_url + "/",
        "serviceId": service_id,
        "context": context,
        "user": USER,
    }
    (tmp_path / "input.json").write_text(json.dumps(arguments), encoding="utf-8")
    result = subprocess.run(
        [node, "--experimental-websocket", str(SCRIPT), str(tmp_path / "input.json")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout, result.stderr
    output: dict[str, Any] = json.loads(result.stdout)
    output["exit"] = result.returncode
    return output


# One scenario per service: the hepatic start dose (order-sign, order-select) and a first
# ANC < 500 at the lab-result hook (its new result in the context, the history prefetched).
MEDPLUM_SCENARIOS = [
    "hep-moderate",
    "hep-moderate-order-select",
    "lab-anc-1st-onset",
    "pv-hold-in-force",
]


@pytest.mark.parametrize("scenario_id", MEDPLUM_SCENARIOS)
def test_medplum_builds_the_prefetch_and_the_service_gives_the_scenarios_advice(
    scenario_id: str, local_fhir_server: FhirServerProcess, service: LiveService, tmp_path: Path
) -> None:
    chosen = scenario(scenario_id)
    local_fhir_server.load(chosen.transaction_bundle())

    output = run_medplum(local_fhir_server, service, chosen.service, chosen.context, tmp_path)

    assert output["exit"] == 0, output
    ids = {s["id"] for s in output["discovery"]["services"]}
    assert ids == {
        "ixazomib-order-sign",
        "ixazomib-order-select",
        "ixazomib-lab-result",
        "ixazomib-patient-view",
    }
    request = output["request"]
    assert "fhirServer" not in request  # the prefetch is all the service gets
    assert request["prefetch"]["patient"]["id"] == chosen.patient_id
    assert None not in request["prefetch"].values()  # every token resolved
    problems = check(chosen, output["response"])
    assert not problems, f"{scenario_id}: {problems}\n" + describe_cards(
        output["response"]["cards"]
    )


def test_keys_medplum_nulls_for_an_unresolvable_token_are_not_read_as_no_data(
    local_fhir_server: FhirServerProcess, service: LiveService, tmp_path: Path
) -> None:
    """Without ``patientId`` in the context Medplum cannot resolve ``{{context.patientId}}``
    and sets every key to null. Read as "no data" that would be a patient with no orders,
    labs or conditions (a new start at 4 mg, no reductions owed); the service refuses the
    call instead, naming what is missing."""
    hep = scenario("hep-moderate")
    local_fhir_server.load(hep.transaction_bundle())
    context = {key: value for key, value in hep.context.items() if key != "patientId"}

    output = run_medplum(local_fhir_server, service, hep.service, context, tmp_path)

    assert set(output["request"]["prefetch"].values()) == {None}
    assert output["exit"] == 1
    assert "response" not in output
    assert "context.patientId is required" in output["error"]


def test_every_prefetch_token_is_one_a_request_must_carry(service: LiveService) -> None:
    """So a null key in a request the service accepts is the client's "no data", never a
    token it could not resolve (README, "Prefetch and null")."""
    discovery = requests.get(f"{service.base_url}/cds-services", timeout=10).json()
    for described in discovery["services"]:
        for template in described["prefetch"].values():
            tokens = set(re.findall(r"\{\{\s*([^}]+?)\s*\}\}", template))
            assert tokens == {"context.patientId"}, template
