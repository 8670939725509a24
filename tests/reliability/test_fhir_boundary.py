"""The FHIR access layer against hostile and failing FHIR servers, through the live service.

The live service (gunicorn, 2 workers, auth on, real keys, CDS_FHIR_TIMEOUT_SECONDS=1,
CDS_FHIR_DEADLINE_SECONDS=2) is called with NO prefetch and ``fhirServer`` pointing at
``faulty_fhir_server.FaultyFhirServer``, a real local HTTP server that misbehaves on command:
another patient's data in its answers, gzip bombs, endless and huge bodies, a byte now and
then, redirects to another server, one request at a time. What is checked is what the EHR
and its patient would notice: the advice, the 412's words, the time to answer, the worker's
memory, whether later calls still work, and how fast the service stops.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from cds_assertions import recommendations
from faulty_fhir_server import FaultyFhirServer, Mode, closed_port_url
from live_server import LiveService, start_service

from cds_service.fixtures import Scenario
from reliability.support import (
    FHIR_DEADLINE,
    FHIR_TIMING,
    MARGIN,
    REQUIRED_KEYS,
    assert_operation_outcome,
    call_without_prefetch,
    wait_for_workers,
    worker_pids,
)

CALLS_AT_ONCE = 8  # CDS_THREADS below: gunicorn may give all of them to one worker
# A worker's peak RSS may grow by its calls' byte budgets, plus the rest of a call's work (the
# issue: 51 MB -> 2,064 MB under a gzip bomb; the Kubernetes memory limit is 768Mi per pod).
# 8 calls at once x the 16 MiB a call may read (README), plus 48 MiB for the rest.
PEAK_RSS_GROWTH_LIMIT_MIB = CALLS_AT_ONCE * 16 + 48


@pytest.fixture(scope="module")
def live() -> Iterator[LiveService]:
    service = start_service(workers=2, env={**FHIR_TIMING, "CDS_THREADS": str(CALLS_AT_ONCE)})
    yield service
    service.stop()


@pytest.fixture
def fhir() -> Iterator[FaultyFhirServer]:
    with FaultyFhirServer(delay=3 * FHIR_DEADLINE) as server:
        yield server


def details(response: requests.Response) -> dict[str, str]:
    """The 412's issues by the data key they name: {"labs": "<why>"}."""
    assert response.status_code == 412, f"{response.status_code}: {response.text[:800]}"
    body = response.json()
    assert_operation_outcome(body)
    found = {}
    for issue in body["issue"][1:]:
        key, _, rest = issue["diagnostics"].partition(" ")
        found[key] = rest.split("): ", 1)[1] if "): " in rest else rest
    return found


def actions(response: requests.Response) -> set[str]:
    return {r["ixazomib"]["action"] for r in recommendations(response.json())}


def wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


# -- 1. another patient's data ------------------------------------------------------------


@pytest.mark.parametrize("page_size", [None, 1], ids=["one page", "paged"])
def test_fetched_data_about_another_patient_is_left_out_and_the_card_says_so(
    live: LiveService,
    fhir: FaultyFhirServer,
    scenarios: dict[str, Scenario],
    page_size: int | None,
) -> None:
    """The FHIR server answers this patient's queries with another patient's results too (their
    moderate hepatic impairment, their ixazomib orders). None of it may shape the advice."""
    patient, other = scenarios["hep-mild"], scenarios["hep-moderate"]
    fhir.set_scenario(patient)
    fhir.set_other_patient(other)
    fhir.page_size = page_size
    response, _ = call_without_prefetch(live, patient, fhir.base_url)
    assert response.status_code == 200, response.text[:800]
    assert "start-reduced" not in actions(response), "advice from another patient's bilirubin"
    left_out = [
        card
        for card in response.json()["cards"]
        if "another patient" in json.dumps(card) and "left out" in json.dumps(card)
    ]
    assert left_out, "no card says that another patient's data was left out"
    assert any(r["ixazomib"]["action"] == "review" for r in recommendations(response.json()))
    assert other.patient_id not in response.text  # the other patient is not named to this EHR


def test_a_patient_read_answered_with_another_patient_is_a_412_that_says_so(
    live: LiveService, fhir: FaultyFhirServer, scenarios: dict[str, Scenario]
) -> None:
    patient, other = scenarios["hep-mild"], scenarios["hep-moderate"]
    fhir.set_scenario(patient)
    fhir.set_other_patient(other, reads=True)
    found = details(call_without_prefetch(live, patient, fhir.base_url)[0])
    assert "another patient" in found["patient"], found


# -- 2. bounded response size -------------------------------------------------------------


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


@pytest.mark.parametrize("mode", [Mode.GZIP_BOMB, Mode.ENDLESS_CHUNKED, Mode.HUGE])
def test_hostile_bodies_keep_worker_memory_bounded(
    live: LiveService, fhir: FaultyFhirServer, scenarios: dict[str, Scenario], mode: Mode
) -> None:
    scenario = scenarios["hep-moderate"]
    fhir.set_scenario(scenario)
    # Fresh workers (gunicorn starts new ones), so that no earlier test's peak hides this one's.
    old = wait_for_workers(live.process.pid, 2)
    for pid in old:
        os.kill(pid, signal.SIGTERM)
    workers = wait_for_workers(live.process.pid, 2, exclude=set(old))
    assert wait_until(lambda: set(worker_pids(live.process.pid)) == set(workers), 30)
    for _ in range(4):  # warm up both workers: their peak so far is the baseline
        assert call_without_prefetch(live, scenario, fhir.base_url)[0].status_code == 200
    before = {pid: peak_rss_mib(pid) for pid in workers}
    fhir.set_mode(mode)
    with ThreadPoolExecutor(max_workers=CALLS_AT_ONCE) as pool:  # every worker thread at once
        results = list(
            pool.map(lambda _: call_without_prefetch(live, scenario, fhir.base_url), range(8))
        )
    for response, elapsed in results:
        assert elapsed < FHIR_DEADLINE + MARGIN, f"{mode}: answered after {elapsed:.2f} s"
        assert set(details(response)) >= set(REQUIRED_KEYS)
    growth = {pid: peak_rss_mib(pid) - before[pid] for pid in workers}
    print(f"\n{mode}: worker peak RSS before {before} MiB, growth {growth} MiB")
    assert all(g < PEAK_RSS_GROWTH_LIMIT_MIB for g in growth.values()), growth
    assert wait_until(lambda: fhir.open_requests == 0, 2.0), "the service is still reading"


# -- 3. trickling servers -----------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.TRICKLE, Mode.TRICKLE_HEADERS])
def test_trickling_servers_hold_no_fetch_thread_past_the_call(
    live: LiveService, fhir: FaultyFhirServer, scenarios: dict[str, Scenario], mode: Mode
) -> None:
    scenario = scenarios["hep-moderate"]
    fhir.set_scenario(scenario)
    fhir.set_mode(mode)
    # 8 calls need 72 queries, more than the service's 2 x 16 fetch threads.
    with ThreadPoolExecutor(max_workers=CALLS_AT_ONCE) as pool:
        results = list(
            pool.map(lambda _: call_without_prefetch(live, scenario, fhir.base_url), range(8))
        )
    for response, elapsed in results:
        assert elapsed < FHIR_DEADLINE + MARGIN, f"answered after {elapsed:.2f} s"
        assert set(details(response)) >= set(REQUIRED_KEYS)
    print(f"\n{mode}: slowest of 8 answers {max(e for _, e in results):.2f} s")
    # No work outlives the call that started it: the service has hung up on the trickler.
    # (The trickler notices at its second write after the service hung up: 2 x 0.3 s.)
    assert wait_until(lambda: fhir.open_requests == 0, 3.0), f"{fhir.open_requests} still read"
    with FaultyFhirServer(scenario) as healthy:
        response, elapsed = call_without_prefetch(live, scenario, healthy.base_url)
    assert response.status_code == 200, response.text[:800]
    assert "start-reduced" in actions(response)
    assert elapsed < FHIR_DEADLINE + MARGIN


# -- 4. redirects -------------------------------------------------------------------------


def test_a_redirect_to_another_server_is_not_followed(
    live: LiveService, fhir: FaultyFhirServer, scenarios: dict[str, Scenario]
) -> None:
    scenario = scenarios["hep-moderate"]
    with FaultyFhirServer(scenario) as elsewhere:
        fhir.set_mode(Mode.REDIRECT)
        fhir.redirect_to = elsewhere.base_url
        response, _ = call_without_prefetch(live, scenario, fhir.base_url)
        assert elsewhere.requests == [], "the patient's queries went to another server"
    assert set(details(response)) >= set(REQUIRED_KEYS)


def test_a_redirect_on_the_same_server_is_followed(
    live: LiveService, fhir: FaultyFhirServer, scenarios: dict[str, Scenario]
) -> None:
    scenario = scenarios["hep-moderate"]
    fhir.set_scenario(scenario)
    fhir.set_mode(Mode.REDIRECT)
    fhir.redirect_to = fhir.moved_base_url
    response, _ = call_without_prefetch(live, scenario, fhir.base_url)
    assert response.status_code == 200, response.text[:800]
    assert "start-reduced" in actions(response)
    moved = [path for path, _ in fhir.requests if path.startswith("/moved/")]
    assert moved, "the redirect was not followed"
    assert all(auth == "Bearer scenario-test-token" for _, auth in fhir.requests)


# -- 5. failure wording -------------------------------------------------------------------


def test_unusable_answers_read_alike_in_the_412(
    live: LiveService, fhir: FaultyFhirServer, scenarios: dict[str, Scenario]
) -> None:
    """Refused, HTTP 404, HTTP 500, an HTML page, broken JSON: the 412 must not tell them apart
    (else the service maps the network for whoever names fhirServer); metrics keep the detail."""
    scenario = scenarios["hep-moderate"]
    fhir.set_scenario(scenario)
    seen: dict[str, dict[str, str]] = {}
    seen["refused"] = details(call_without_prefetch(live, scenario, closed_port_url())[0])
    for mode in (Mode.ERROR_404, Mode.ERROR_500, Mode.NOT_FHIR, Mode.INVALID_JSON):
        fhir.set_mode(mode)
        seen[mode.value] = details(call_without_prefetch(live, scenario, fhir.base_url)[0])
    wordings = {fault: found["patient"] for fault, found in seen.items()}
    assert len(set(wordings.values())) == 1, wordings
    assert "HTTP 404" not in json.dumps(seen)
    assert "could not be reached" not in json.dumps(seen)
    metrics = requests.get(live.base_url + "/metrics", timeout=5).text
    for reason in ("connection", "not_found", "http_5xx", "invalid_response"):
        assert f'reason="{reason}"' in metrics, reason


# -- 11. an upper-case scheme; stopping with fetches stuck --------------------------------


def test_an_upper_case_http_scheme_is_an_http_url(
    live: LiveService, fhir: FaultyFhirServer, scenarios: dict[str, Scenario]
) -> None:
    scenario = scenarios["hep-moderate"]
    fhir.set_scenario(scenario)
    response, _ = call_without_prefetch(live, scenario, fhir.base_url.replace("http://", "HTTP://"))
    assert response.status_code == 200, response.text[:800]
    assert "start-reduced" in actions(response)


def test_sigterm_does_not_wait_for_fetches_stuck_on_a_trickling_server(
    scenarios: dict[str, Scenario],
) -> None:
    service = start_service(workers=2, env=FHIR_TIMING)
    try:
        scenario = scenarios["hep-moderate"]
        with FaultyFhirServer(scenario) as fhir:
            fhir.set_mode(Mode.TRICKLE)
            with ThreadPoolExecutor(max_workers=4) as pool:
                results = list(
                    pool.map(
                        lambda _: call_without_prefetch(service, scenario, fhir.base_url), range(4)
                    )
                )
            assert all(response.status_code == 412 for response, _ in results)
            started = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            service.process.wait(timeout=40)
            stopped_in = time.monotonic() - started
        print(f"\nSIGTERM to exit with trickling fetches: {stopped_in:.2f} s")
        assert stopped_in < 8, f"stopping took {stopped_in:.1f} s (graceful timeout: 20 s)"
    finally:
        service.stop()


# -- issue 12, 10: a server that answers one query at a time ------------------------------


@pytest.fixture(scope="module")
def live_defaults() -> Iterator[LiveService]:
    """The shipped FHIR timing: 2 s per query, 3 s per call."""
    service = start_service(workers=2)
    yield service
    service.stop()


def test_a_one_at_a_time_server_still_gives_the_required_data(
    live_defaults: LiveService, scenarios: dict[str, Scenario]
) -> None:
    """Each search takes 0.8 s and the server takes the latest-arrived request next: required
    queries issued together with optional ones would wait behind them past the deadline."""
    scenario = scenarios["hep-moderate"]
    with FaultyFhirServer(scenario, serial_delay=0.8) as fhir:
        fhir.set_mode(Mode.SERIAL)
        response, elapsed = call_without_prefetch(live_defaults, scenario, fhir.base_url)
    print(f"\none query at a time: {response.status_code} in {elapsed:.2f} s")
    assert response.status_code == 200, response.text[:1500]
    assert "start-reduced" in actions(response)
    text = json.dumps(response.json())
    assert "could not be fetched" in text  # the optional data that did not come is named
    assert elapsed < 3.0 + MARGIN


def test_a_412_names_the_queries_that_did_not_finish(
    live_defaults: LiveService, scenarios: dict[str, Scenario]
) -> None:
    scenario = scenarios["hep-moderate"]
    with FaultyFhirServer(scenario, serial_delay=1.5) as fhir:
        fhir.set_mode(Mode.SERIAL)
        found = details(call_without_prefetch(live_defaults, scenario, fhir.base_url)[0])
    unfinished = {key: why for key, why in found.items() if "did not finish" in why}
    assert unfinished, found
    queries = {"medicationRequests": "MedicationRequest?patient=", "labs": "Observation?patient="}
    for key, why in unfinished.items():
        assert queries.get(key, "Patient/") in why, (key, why)
