"""A FHIR server that drops a query's connection without answering, through the live service.

A FHIR server closes a kept-alive connection once it has been idle for its keep-alive timeout
(Node's is 5 s, as the local Medplum server runs it). The service keeps its connections to the
FHIR server in a pool; when the server closes one just as the service sends a query on it, the
query finds the connection closed unanswered ("Remote end closed connection without response")
or reset ("Connection reset by peer"). A full ``ixazomib-cds verify`` run against the local
Medplum server saw this for 84 of about 1,000 queries, each then a card saying data could not
be fetched, or a 412. A real server does it only by a race, which a test cannot time, so
``FaultyFhirServer`` drops a request on command (``drop_once``: the next one; ``drop``: every
one), on a connection the service has already used.

The live service (gunicorn, 2 workers, auth on, CDS_FHIR_TIMEOUT_SECONDS=1,
CDS_FHIR_DEADLINE_SECONDS=2) is called with NO prefetch. A query dropped once is sent once
more on a fresh connection, so the call gets the advice a healthy server gives, and nothing is
counted as a failed fetch; a server that drops every query still gets the 412 within the
deadline, each query sent at most twice; a timeout or an HTTP error is not sent again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from cds_assertions import recommendations
from faulty_fhir_server import FaultyFhirServer, Mode
from live_server import LiveService
from prometheus_client.parser import text_string_to_metric_families

from cds_service.fixtures import Scenario
from reliability.support import (
    FHIR_DEADLINE,
    MARGIN,
    REQUIRED_KEYS,
    assert_operation_outcome,
    call_without_prefetch,
)

STYLES = {"closed": False, "reset": True}  # FaultyFhirServer.drop_with_reset


@pytest.fixture
def fhir(scenarios: dict[str, Scenario]) -> Iterator[FaultyFhirServer]:
    with FaultyFhirServer(scenarios["hep-moderate"], delay=3 * FHIR_DEADLINE) as server:
        yield server


def advice(response: requests.Response) -> tuple[set[str], list[str]]:
    """The actions advised and the cards' summaries: what the clinician sees."""
    assert response.status_code == 200, f"{response.status_code}: {response.text[:800]}"
    actions = {r["ixazomib"]["action"] for r in recommendations(response.json())}
    return actions, sorted(card["summary"] for card in response.json()["cards"])


def fetch_failures(live: LiveService) -> dict[tuple[str, str], float]:
    """cds_fhir_fetch_failures_total by (resource, reason), summed over the workers."""
    text = requests.get(live.base_url + "/metrics", timeout=5).text
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "cds_fhir_fetch_failures_total":
                found[sample.labels["resource"], sample.labels["reason"]] = sample.value
    return found


def asked(fhir: FaultyFhirServer) -> Counter[str]:
    """How many times each query (path and query string) reached the FHIR server."""
    return Counter(path for path, _ in fhir.requests)


@pytest.mark.parametrize("style", list(STYLES))
@pytest.mark.parametrize("resource", ["Patient", "Observation", "AdverseEvent"])
def test_a_query_whose_connection_is_dropped_once_still_gets_the_normal_advice(
    fhir_timed_live: LiveService,
    fhir: FaultyFhirServer,
    scenarios: dict[str, Scenario],
    resource: str,
    style: str,
) -> None:
    """Patient is a read and required, Observation (labs) a required search, AdverseEvent an
    optional search: unanswered, they would be a 412 or a card saying what was not checked."""
    scenario = scenarios["hep-moderate"]
    # The healthy call also leaves connections in the pools.
    healthy, _ = call_without_prefetch(fhir_timed_live, scenario, fhir.base_url)
    normal = advice(healthy)
    assert "start-reduced" in normal[0]
    healthy_queries = asked(fhir)
    fhir.reset_requests()
    failures_before = fetch_failures(fhir_timed_live)
    fhir.drop_with_reset = STYLES[style]
    fhir.set_mode(Mode.DROP_ONCE, only={resource})

    response, elapsed = call_without_prefetch(fhir_timed_live, scenario, fhir.base_url)

    assert advice(response) == normal, response.text[:1500]
    assert "could not be fetched" not in response.text
    assert elapsed < FHIR_DEADLINE + MARGIN
    resent = asked(fhir) - healthy_queries
    # The dropped query, once more; nothing else.
    assert list(resent.values()) == [1], resent
    assert next(iter(resent)).startswith(f"/fhir/{resource}"), resent
    assert fetch_failures(fhir_timed_live) == failures_before, "a query answered on its second try"


@pytest.mark.parametrize("style", list(STYLES))
def test_a_server_that_drops_every_query_gets_the_412_within_the_deadline(
    fhir_timed_live: LiveService, fhir: FaultyFhirServer, scenarios: dict[str, Scenario], style: str
) -> None:
    scenario = scenarios["hep-moderate"]
    fhir.drop_with_reset = STYLES[style]
    fhir.set_mode(Mode.DROP)
    failures_before = fetch_failures(fhir_timed_live)

    response, elapsed = call_without_prefetch(fhir_timed_live, scenario, fhir.base_url)

    assert elapsed < FHIR_DEADLINE + MARGIN, f"answered after {elapsed:.2f} s"
    assert response.status_code == 412, response.text[:800]
    body = response.json()
    assert_operation_outcome(body)
    why = {issue["diagnostics"].split(" ", 1)[0]: issue["diagnostics"] for issue in body["issue"]}
    for key in REQUIRED_KEYS:
        assert "no usable FHIR answer" in why.get(key, ""), why
    assert set(asked(fhir).values()) == {2}, asked(fhir)  # sent once more, never again
    failures = fetch_failures(fhir_timed_live)
    counted = failures.get(("Patient", "connection"), 0) - failures_before.get(
        ("Patient", "connection"), 0
    )
    assert counted == 1, "the Patient read failed twice: one failed fetch"


@pytest.mark.parametrize("mode", [Mode.SLOW, Mode.ERROR_500], ids=lambda m: m.value)
def test_a_timeout_or_an_http_error_is_not_sent_again(
    fhir_timed_live: LiveService, fhir: FaultyFhirServer, scenarios: dict[str, Scenario], mode: Mode
) -> None:
    scenario = scenarios["hep-moderate"]
    fhir.set_mode(mode, only={"Observation"})
    response, elapsed = call_without_prefetch(fhir_timed_live, scenario, fhir.base_url)
    assert response.status_code == 412, response.text[:800]
    assert elapsed < FHIR_DEADLINE + MARGIN
    labs = {path: n for path, n in asked(fhir).items() if path.startswith("/fhir/Observation")}
    assert labs, fhir.requests
    assert set(labs.values()) == {1}, labs
