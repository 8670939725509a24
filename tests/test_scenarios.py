"""The clinical scenarios, run against the service: the answer must carry what the label says.

Each scenario (fhir_fixtures/scenarios/*.json, written from the label, not from the engine) is
posted twice: with every prefetch key filled, and with no prefetch so that the service has to
fetch everything from ``fhirServer``. A small in-process FHIR server answers from the scenario's
``resources`` (it also serves a Medication that only lives on the server).
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

from cds_service.app import create_app
from cds_service.config import Config
from cds_service.fixtures import (
    RECOMMENDATION_KEY,
    ExpectedRecommendation,
    Scenario,
    load_scenarios,
)

SCENARIOS = load_scenarios()
DOSE_CHANGES = {"reduce", "start-reduced", "correct-dose"}
ORDER_SERVICES = {"ixazomib-order-sign", "ixazomib-order-select"}


class _StubFhir(BaseHTTPRequestHandler):
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


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[type[_StubFhir]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubFhir)
    _StubFhir.base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield _StubFhir
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    app = create_app(Config.for_testing())
    app.config["TESTING"] = True
    return app.test_client()


def _describe(cards: list[dict[str, Any]]) -> str:
    lines = []
    for card in cards:
        extension = (card.get("extension") or {}).get(RECOMMENDATION_KEY)
        lines.append(f"  - [{card.get('indicator')}] {card.get('summary')!r} {extension}")
    return "\n".join(lines) or "  (no cards)"


def _check_dose_suggestion(
    scenario: Scenario, card: dict[str, Any], expected: ExpectedRecommendation
) -> list[str]:
    """Contract: at order hooks a dose change is one ``update`` of the whole draft."""
    if scenario.service not in ORDER_SERVICES or expected.ixazomib_dose_mg is None:
        return []
    recommendation = card["extension"][RECOMMENDATION_KEY]
    if recommendation.get("ixazomib", {}).get("action") not in DOSE_CHANGES:
        return []
    draft_ids = {
        r["id"] for r in scenario.context_resources() if r["resourceType"] == "MedicationRequest"
    }
    for suggestion in card.get("suggestions") or []:
        for action in suggestion.get("actions") or []:
            resource = action.get("resource") or {}
            if action.get("type") != "update" or resource.get("id") not in draft_ids:
                continue
            dose = resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
            if format(float(dose["value"]), "g") != expected.ixazomib_dose_mg:
                return [f"update suggestion carries {dose}, expected {expected.ixazomib_dose_mg}"]
            if expected.suggested_product_code is not None:
                codes = {
                    c.get("code")
                    for c in (resource.get("medicationCodeableConcept") or {}).get("coding", [])
                }
                if expected.suggested_product_code not in codes:
                    return [
                        f"update suggestion product codes {codes}, expected "
                        f"{expected.suggested_product_code}"
                    ]
            return []
    return [f"no update suggestion of the draft for card {card.get('summary')!r}"]


def check(scenario: Scenario, response_json: dict[str, Any]) -> list[str]:
    cards = [c for c in response_json.get("cards", []) if isinstance(c, dict)]
    advised = [
        c for c in cards if isinstance((c.get("extension") or {}).get(RECOMMENDATION_KEY), dict)
    ]
    problems: list[str] = []
    unused = list(advised)
    for expected in scenario.expected:
        card = next(
            (c for c in unused if expected.matches(c["extension"][RECOMMENDATION_KEY])), None
        )
        if card is None:
            problems.append(f"missing {expected.describe()}")
            continue
        unused.remove(card)
        problems += _check_dose_suggestion(scenario, card, expected)
    for card in unused:
        recommendation = card["extension"][RECOMMENDATION_KEY]
        if any(optional.matches(recommendation) for optional in scenario.optional):
            continue
        action = (recommendation.get("ixazomib") or {}).get("action")
        if scenario.allow_extra_review and action == "review":
            continue
        problems.append(f"unexpected {json.dumps(recommendation, sort_keys=True)}")
    return problems


@pytest.mark.parametrize("mode", ["prefetch", "fetch"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(
    scenario: Scenario, mode: str, client: FlaskClient, fhir_server: type[_StubFhir]
) -> None:
    if mode == "fetch" and not scenario.send_fhir_server:
        pytest.skip("the scenario's client sends no fhirServer, so nothing can be fetched")
    fhir_server.scenario = scenario
    fhir_server.requests.clear()
    request = scenario.cds_request(
        prefetch=mode == "prefetch",
        fhir_server=fhir_server.base if scenario.send_fhir_server else None,
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
        + _describe(body["cards"])
    )
