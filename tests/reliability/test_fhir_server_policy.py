"""Which FHIR servers the REAL service (gunicorn, auth on) queries, and with what token.

* An issuer configured with ``fhir_servers`` may name only those: any other ``fhirServer``
  gets a 400 that is the same whether something listens there or not, and is never contacted.
* The EHR's access token never goes over plain http to a host that is not loopback.
* Without ``fhirAuthorization`` nothing is fetched (CDS Hooks: each FHIR call carries the
  EHR's token) unless ``CDS_ALLOW_OPEN_FHIR_SERVERS=true``, as ``make serve`` sets for open
  test servers such as the CDS Hooks Sandbox's; what was not prefetched is then unavailable,
  and the 412 names the setting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from faulty_fhir_server import FaultyFhirServer, Mode, closed_port_url
from jwt_tools import jwk_of, jwks_of, make_es384_key, mint
from live_server import LiveService, free_port, start_service

from cds_service.fixtures import Scenario
from reliability.support import assert_operation_outcome

OPEN_ISSUER = "https://ehr.example.org"  # no fhir_servers: any FHIR server
LISTED_ISSUER = "https://listed.example.org"  # fhir_servers: only the test's FHIR server
SCENARIO = "hep-moderate"
SETTING = "CDS_ALLOW_OPEN_FHIR_SERVERS"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Strict:
    service: LiveService
    fhir: FaultyFhirServer  # on LISTED_ISSUER's list
    other: FaultyFhirServer  # a FHIR server on no list
    key: Any

    def call(self, body: dict[str, Any], iss: str = OPEN_ISSUER) -> requests.Response:
        path = "/cds-services/ixazomib-order-sign"
        url = self.service.base_url + path
        token = mint(self.key, "es-1", iss=iss, aud=url)
        return requests.post(
            url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=15
        )


@pytest.fixture(scope="module")
def strict(
    tmp_path_factory: pytest.TempPathFactory, scenarios: dict[str, Scenario]
) -> Iterator[Strict]:
    key = make_es384_key()
    with FaultyFhirServer(scenarios[SCENARIO]) as fhir, FaultyFhirServer(
        scenarios[SCENARIO]
    ) as other:
        issuers = tmp_path_factory.mktemp("issuers") / "trusted-issuers.json"
        issuers.write_text(json.dumps({"issuers": [
            {"iss": OPEN_ISSUER, "jwks": jwks_of(jwk_of(key, "es-1"))},
            {"iss": LISTED_ISSUER, "jwks": jwks_of(jwk_of(key, "es-1")),
             "fhir_servers": [fhir.base_url]},
        ]}))
        service = start_service(workers=1, env={"CDS_TRUSTED_ISSUERS": str(issuers)})
        try:
            yield Strict(service, fhir, other, key)
        finally:
            service.stop()


def _request(
    scenario: Scenario, fhir_server: str, *, token: bool = True, prefetch: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(
        json.dumps(scenario.cds_request(prefetch=prefetch, fhir_server=fhir_server), default=str)
    )
    if not token:
        del body["fhirAuthorization"]
    return body


@pytest.fixture(autouse=True)
def _fresh_servers(request: pytest.FixtureRequest) -> None:
    if "strict" in request.fixturenames:
        strict: Strict = request.getfixturevalue("strict")
        for server in (strict.fhir, strict.other):
            server.set_mode(Mode.HEALTHY)
            server.reset_requests()


# -- per-issuer allow-list --------------------------------------------------------------------


def test_a_fhir_server_not_on_the_issuers_list_is_refused_and_never_contacted(
    strict: Strict, scenarios: dict[str, Scenario]
) -> None:
    scenario = scenarios[SCENARIO]
    answers = []
    for elsewhere in (strict.other.base_url, closed_port_url()):  # listening, and not
        response = strict.call(_request(scenario, elsewhere), iss=LISTED_ISSUER)
        assert response.status_code == 400, response.text
        assert_operation_outcome(response.json(), mentions="fhir_servers")
        answers.append(response.json())
    assert answers[0] == answers[1], "the answer tells a listening server from a closed port"
    assert strict.other.requests == []
    assert strict.fhir.requests == []


def test_a_fhir_server_on_the_list_is_queried_however_its_url_is_spelled(
    strict: Strict, scenarios: dict[str, Scenario]
) -> None:
    scenario = scenarios[SCENARIO]
    spelled = strict.fhir.base_url + "/"  # a trailing slash is the same base URL
    response = strict.call(_request(scenario, spelled), iss=LISTED_ISSUER)
    assert response.status_code == 200, response.text
    assert response.json()["cards"]
    assert strict.fhir.requests
    assert all(auth == "Bearer scenario-test-token" for _, auth in strict.fhir.requests)


def test_an_issuer_without_a_list_may_name_any_fhir_server(
    strict: Strict, scenarios: dict[str, Scenario]
) -> None:
    response = strict.call(_request(scenarios[SCENARIO], strict.other.base_url))
    assert response.status_code == 200, response.text
    assert strict.other.requests


# -- the EHR's token over plain http ----------------------------------------------------------


def test_the_access_token_never_goes_over_plain_http_to_a_host_that_is_not_loopback(
    strict: Strict, scenarios: dict[str, Scenario]
) -> None:
    # 0.0.0.0 is no loopback address, yet Linux delivers it to the machine itself: were the
    # token sent, the test's own server would receive it (all traffic stays on this machine).
    port = strict.fhir.base_url.split(":")[2].split("/")[0]
    response = strict.call(_request(scenarios[SCENARIO], f"http://0.0.0.0:{port}/fhir"))
    assert response.status_code == 400, response.text
    assert_operation_outcome(response.json(), mentions="https")
    assert strict.fhir.requests == []
    # plain http to a loopback name is the same machine: allowed
    loopback = f"http://localhost:{port}/fhir"
    assert strict.call(_request(scenarios[SCENARIO], loopback)).status_code == 200
    assert strict.fhir.requests


# -- no token: no fetch, unless open servers are allowed ---------------------------------------


def test_without_fhir_authorization_nothing_is_fetched_and_the_412_names_the_setting(
    strict: Strict, scenarios: dict[str, Scenario]
) -> None:
    scenario = scenarios[SCENARIO]
    response = strict.call(_request(scenario, strict.fhir.base_url, token=False))
    assert response.status_code == 412, response.text
    body = response.json()
    assert_operation_outcome(body, mentions=SETTING)
    named = [issue["diagnostics"] for issue in body["issue"][1:]]
    assert any(d.startswith("labs ") and SETTING in d for d in named), named
    assert strict.fhir.requests == [], "queried the FHIR server without a token"
    # what was prefetched is used as ever
    prefetched = strict.call(_request(scenario, strict.fhir.base_url, token=False, prefetch=True))
    assert prefetched.status_code == 200, prefetched.text
    assert prefetched.json()["cards"]


def test_with_open_fhir_servers_allowed_a_request_without_token_is_fetched_for(
    scenarios: dict[str, Scenario],
) -> None:
    scenario = scenarios[SCENARIO]
    service = start_service(workers=1, env={SETTING: "true"})
    try:
        with FaultyFhirServer(scenario) as fhir:
            path = "/cds-services/ixazomib-order-sign"
            response = requests.post(
                service.base_url + path,
                json=_request(scenario, fhir.base_url, token=False),
                headers=service.headers(path),
                timeout=15,
            )
            assert response.status_code == 200, response.text
            assert response.json()["cards"]
            assert fhir.requests
            assert all(auth is None for _, auth in fhir.requests)
    finally:
        service.stop()


def test_make_serve_allows_open_fhir_servers_as_the_sandbox_needs(
    tmp_path: Path, scenarios: dict[str, Scenario]
) -> None:
    """``make serve`` (development: auth off) queries a FHIR server without a token, as the
    CDS Hooks Sandbox sends none; production's ``ixazomib-cds serve`` does not (above)."""
    scenario = scenarios[SCENARIO]
    port = free_port()
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("CDS_")
    }
    environment.update(
        PORT=str(port), CDS_DATABASE_URL=f"sqlite:///{tmp_path / 'serve.sqlite3'}", CDS_WORKERS="1"
    )
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "serve"], cwd=ROOT, env=environment, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,  # its own group: stopped as one
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        with FaultyFhirServer(scenario) as fhir:
            response = requests.post(
                base + "/cds-services/ixazomib-order-sign",
                json=_request(scenario, fhir.base_url, token=False),
                timeout=15,
            )
            assert response.status_code == 200, response.text
            assert fhir.requests
            assert all(auth is None for _, auth in fhir.requests)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
