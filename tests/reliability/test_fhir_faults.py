"""FHIR server faults, produced by a real local server that misbehaves on command.

The live service (gunicorn, 2 workers, auth on, CDS_FHIR_TIMEOUT_SECONDS=1,
CDS_FHIR_DEADLINE_SECONDS=2) is called with NO prefetch and ``fhirServer`` pointing at
``faulty_fhir_server.FaultyFhirServer``. Whatever the fault, it answers within its deadline
(+ margin) every time, with a 412 whose OperationOutcome names the missing data and why, or
with cards that say what could not be checked; never a 500, never an empty card list for an
ixazomib order as if the data were normal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cds_assertions import assert_conformant_response, recommendations
from faulty_fhir_server import FaultyFhirServer, Mode, closed_port_url
from live_server import LiveService

from cds_service.fixtures import Scenario
from reliability.support import (
    FHIR_DEADLINE,
    MARGIN,
    REQUIRED_KEYS,
    assert_operation_outcome,
    call_without_prefetch,
    schema_errors,
)

SCENARIOS = ("hep-moderate", "lab-anc-1st-onset")

# What the 412 must say about each fault (in an issue naming a required prefetch key).
FAULTS: dict[str, tuple[Mode | None, str]] = {
    "slower than the timeout": (Mode.SLOW, "did not finish"),
    # One wording for what is not a usable FHIR answer: the 412 must not map the network.
    "HTTP 500": (Mode.ERROR_500, "no usable FHIR answer"),
    "invalid JSON": (Mode.INVALID_JSON, "no usable FHIR answer"),
    "401": (Mode.UNAUTHORIZED, "refused the access token"),
    "connection refused": (None, "no usable FHIR answer"),
    "next link loops": (Mode.LOOP, "loop"),
    "endless pages": (Mode.ENDLESS_PAGES, "pages"),
    "wrong resource type": (Mode.WRONG_TYPE, ""),
}


@pytest.fixture(scope="module")
def fhir() -> Iterator[FaultyFhirServer]:
    with FaultyFhirServer(delay=3 * FHIR_DEADLINE) as server:
        yield server


def _check_412_or_honest_cards(response: requests.Response, reason: str) -> None:
    assert response.status_code in (200, 412), f"{response.status_code}: {response.text[:500]}"
    body = response.json()
    if response.status_code == 412:
        assert_operation_outcome(body)
        details = [issue["diagnostics"] for issue in body["issue"][1:]]
        named = [d for d in details if d.split(" ", 1)[0] in REQUIRED_KEYS]
        assert named, f"no required data named in {details}"
        assert any(reason.lower() in d.lower() for d in named), f"{reason!r} not in {details}"
        return
    assert_conformant_response(body)
    assert not schema_errors("CdsResponse", body)
    assert body["cards"], "an empty card list, as if the data were normal"
    assert any(r["ixazomib"]["action"] == "review" for r in recommendations(body)), body


@pytest.mark.parametrize("scenario_id", SCENARIOS)
def test_healthy_fhir_server_gives_the_same_advice_as_prefetch(
    fhir_timed_live: LiveService,
    fhir: FaultyFhirServer,
    scenarios: dict[str, Scenario],
    scenario_id: str,
) -> None:
    scenario = scenarios[scenario_id]
    fhir.set_scenario(scenario)
    fhir.set_mode(Mode.HEALTHY)
    fhir.reset_requests()
    response, elapsed = call_without_prefetch(fhir_timed_live, scenario, fhir.base_url)
    assert response.status_code == 200, response.text
    assert recommendations(response.json()), response.json()
    assert all(auth == "Bearer scenario-test-token" for _, auth in fhir.requests)
    assert elapsed < FHIR_DEADLINE + MARGIN


@pytest.mark.parametrize("scenario_id", SCENARIOS)
@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_every_fault_gets_a_412_or_honest_cards_within_the_deadline(
    fhir_timed_live: LiveService,
    fhir: FaultyFhirServer,
    scenarios: dict[str, Scenario],
    scenario_id: str,
    fault: str,
) -> None:
    scenario = scenarios[scenario_id]
    mode, reason = FAULTS[fault]
    fhir.set_scenario(scenario)
    url = closed_port_url() if mode is None else fhir.base_url
    if mode is not None:
        fhir.set_mode(mode)
    with ThreadPoolExecutor(max_workers=3) as pool:  # three at once, "every time"
        results = list(
            pool.map(lambda _: call_without_prefetch(fhir_timed_live, scenario, url), range(3))
        )
    for response, elapsed in results:
        assert elapsed < FHIR_DEADLINE + MARGIN, f"{fault}: answered after {elapsed:.2f} s"
        _check_412_or_honest_cards(response, reason)
        assert response.status_code == 412, "every required key failed"


@pytest.mark.parametrize("mode", [Mode.SLOW, Mode.ERROR_500, Mode.LOOP], ids=lambda m: m.value)
def test_required_labs_failing_alone_is_a_412_naming_labs(
    fhir_timed_live: LiveService, fhir: FaultyFhirServer, scenarios: dict[str, Scenario], mode: Mode
) -> None:
    scenario = scenarios["hep-moderate"]
    fhir.set_scenario(scenario)
    fhir.set_mode(mode, only={"Observation"})
    response, elapsed = call_without_prefetch(fhir_timed_live, scenario, fhir.base_url)
    assert elapsed < FHIR_DEADLINE + MARGIN
    assert response.status_code == 412, response.text
    details = [issue["diagnostics"] for issue in response.json()["issue"][1:]]
    assert any(d.startswith("labs ") for d in details), details
    assert not any(d.startswith(("patient ", "medicationRequests ")) for d in details), details


@pytest.mark.parametrize(
    "mode", [Mode.SLOW, Mode.ERROR_500, Mode.INVALID_JSON], ids=lambda m: m.value
)
def test_optional_data_failing_gives_cards_that_say_what_was_not_checked(
    fhir_timed_live: LiveService, fhir: FaultyFhirServer, scenarios: dict[str, Scenario], mode: Mode
) -> None:
    scenario = scenarios["hep-moderate"]
    fhir.set_scenario(scenario)
    fhir.set_mode(mode, only={"AdverseEvent"})
    response, elapsed = call_without_prefetch(fhir_timed_live, scenario, fhir.base_url)
    assert elapsed < FHIR_DEADLINE + MARGIN
    _check_412_or_honest_cards(response, "")
    assert response.status_code == 200
    text = json.dumps(response.json()).lower()
    assert "adverse" in text, "no card says the adverse events could not be checked"
    actions = {r["ixazomib"]["action"] for r in recommendations(response.json())}
    assert "start-reduced" in actions  # the advice the data that did arrive supports


def test_the_service_is_healthy_after_the_faults(fhir_timed_live: LiveService) -> None:
    assert requests.get(fhir_timed_live.base_url + "/healthz", timeout=5).status_code == 200
    logs = fhir_timed_live.logs()
    assert '"status": "500"' not in logs
    assert "scenario-test-token" not in logs
