"""End to end: the production server (gunicorn, 2 workers) over HTTP with real signed JWTs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from builders import order_sign_request
from cds_assertions import assert_conformant_response
from live_server import LiveService, start_service

from cds_service.services import SERVICES

SIGN = "/cds-services/ixazomib-order-sign"


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    running = start_service(workers=2)
    yield running
    running.stop()


def test_discovery_needs_a_token_and_401_is_bare(service: LiveService) -> None:
    response = requests.get(f"{service.base_url}/cds-services", timeout=5)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["diagnostics"] == "Authentication required."


def test_es384_and_rs384_tokens_are_accepted(service: LiveService) -> None:
    for alg in ("ES384", "RS384"):
        headers = {"Authorization": f"Bearer {service.token('/cds-services', alg=alg)}"}
        response = requests.get(f"{service.base_url}/cds-services", headers=headers, timeout=5)
        assert response.status_code == 200, alg
        assert {s["id"] for s in response.json()["services"]} == set(SERVICES)


def test_base_url_as_audience_is_accepted(service: LiveService) -> None:
    response = requests.get(
        f"{service.base_url}/cds-services", headers=service.headers(""), timeout=5
    )
    assert response.status_code == 200


def test_order_sign_call_with_token_returns_conformant_cards(service: LiveService) -> None:
    token = service.token(SIGN)
    response = requests.post(
        service.base_url + SIGN,
        json=order_sign_request(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert_conformant_response(response.json())
    assert token not in service.logs()


def test_a_replayed_token_is_refused_whichever_worker_gets_it(service: LiveService) -> None:
    headers = service.headers("/cds-services")
    first = requests.get(f"{service.base_url}/cds-services", headers=headers, timeout=5)
    replays = [
        requests.get(f"{service.base_url}/cds-services", headers=headers, timeout=5).status_code
        for _ in range(6)
    ]
    assert first.status_code == 200
    assert replays == [401] * 6


def test_token_for_another_audience_is_refused(service: LiveService) -> None:
    headers = {"Authorization": "Bearer " + service.token("/cds-services", aud="https://elsewhere")}
    response = requests.get(f"{service.base_url}/cds-services", headers=headers, timeout=5)
    assert response.status_code == 401


def test_feedback_round_trip_and_cors_preflight(service: LiveService) -> None:
    path = SIGN + "/feedback"
    body = {
        "feedback": [
            {
                "card": "5b0c6f8e-3a0e-4a57-9c5e-6b2f9a1d0e11",
                "outcome": "accepted",
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
            }
        ]
    }
    response = requests.post(
        service.base_url + path, json=body, headers=service.headers(path), timeout=5
    )
    assert response.status_code == 200
    preflight = requests.options(
        service.base_url + SIGN,
        timeout=5,
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
        },
    )
    assert preflight.status_code in (200, 204)
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
