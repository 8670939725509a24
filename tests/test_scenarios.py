"""The clinical scenarios, run against the service: the answer must carry what the label says.

Each scenario (cds_service/scenarios/*.json, written from the label, not from the engine) is
posted with every prefetch key filled, as an EHR that prefetches sends it. The runs against a
real FHIR server, with EHR-filled prefetch and with none, are in
tests/integration/test_scenarios_on_fhir_server.py.

Test double: the ``fhirServer`` here is a small in-process HTTP server that answers from the
scenario's own ``resources``. It exists for what the real (Medplum) server cannot be made to do
on command: fail one resource type with 503 (``prefetchFailures`` scenarios, where the EHR's
prefetch AND the server both fail). It also serves Medications that live only on the server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from scenario_checks import check, describe_cards

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.fixtures import Scenario, load_scenarios

SCENARIOS = load_scenarios()


class _ScenarioFhirServer(BaseHTTPRequestHandler):
    scenario: ClassVar[Scenario | None] = None
    base: ClassVar[str] = ""
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        scenario = type(self).scenario
        type(self).requests.append(self.path)
        parts = urlsplit(self.path)
        path = parts.path.removeprefix("/fhir/")
        if scenario is None:
            return self._send(503, {"resourceType": "OperationOutcome"})
        if parts.query or "/" not in path:
            if path.split("/")[0] in scenario.failing_resource_types():
                return self._send(
                    503,
                    {
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {"severity": "error", "code": "transient", "diagnostics": "unavailable"}
                        ],
                    },
                )
            query = path + ("?" + parts.query if parts.query else "")
            return self._send(200, scenario.search(query, base_url=type(self).base))
        resource = scenario.read(path)
        if resource is None:
            return self._send(
                404,
                {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "not-found", "diagnostics": path}],
                },
            )
        return self._send(200, resource)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


class _BurstServer(ThreadingHTTPServer):
    # ~10 connections at once per hook call: socketserver's backlog of 5 could drop a SYN,
    # resent only after 1 s (see tests/faulty_fhir_server.py).
    request_queue_size = 128


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[type[_ScenarioFhirServer]]:
    server = _BurstServer(("127.0.0.1", 0), _ScenarioFhirServer)
    _ScenarioFhirServer.base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield _ScenarioFhirServer
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    app = create_app(Config.for_testing())
    app.config["TESTING"] = True
    return app.test_client()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(
    scenario: Scenario, client: FlaskClient, fhir_server: type[_ScenarioFhirServer]
) -> None:
    fhir_server.scenario = scenario
    fhir_server.requests.clear()
    request = scenario.cds_request(
        prefetch=True, fhir_server=fhir_server.base if scenario.send_fhir_server else None
    )
    response = client.post(f"/cds-services/{scenario.service}", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("cards"), list), body
    problems = check(scenario, body)
    assert not problems, (
        f"{scenario.id}: {scenario.title}\n  label: {scenario.label}\n"
        + "\n".join(f"  * {p}" for p in problems)
        + "\n  cards:\n"
        + describe_cards(body["cards"])
    )
