"""cds_service.protocol.fhir_policy: which fhirServer may be queried, and with what token.

The live suite (tests/reliability/test_fhir_server_policy.py) holds the deployed service to
these decisions; here each decision is pinned down, the test-only settings included.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from cds_service.config import Config
from cds_service.errors import BadRequest
from cds_service.protocol.envelope import HookRequest
from cds_service.protocol.fhir_policy import check_fhir_server, fhir_base, is_loopback_host

STRICT = Config.for_testing()
TOKEN = {
    "access_token": "ehr-token",
    "token_type": "Bearer",
    "expires_in": 300,
    "scope": "patient/*.read",
    "subject": "cds",
}


def hook_request(fhir_server: str | None, token: bool = True) -> HookRequest:
    body: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": "p1"},
    }
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
    if token:
        body["fhirAuthorization"] = TOKEN
    return HookRequest.model_validate(body)


@pytest.mark.parametrize(
    "server",
    [
        "https://ehr.example.org/fhir",
        "http://127.0.0.1:8103/fhir",
        "http://127.0.0.2/fhir",
        "http://localhost/fhir",
        "http://[::1]:8080/fhir",
    ],
)
def test_the_token_may_go_over_https_or_to_loopback(server: str) -> None:
    assert check_fhir_server(hook_request(server), STRICT, None) is None


@pytest.mark.parametrize(
    "server",
    [
        "http://ehr.example.org/fhir",
        "http://10.0.0.5/fhir",
        "http://0.0.0.0:8103/fhir",
        "http://localhost.example.org/fhir",
        "http://127.0.0.1.example.org/fhir",
    ],
)
def test_the_token_never_goes_over_plain_http_elsewhere(server: str) -> None:
    with pytest.raises(BadRequest, match="must be an https URL"):
        check_fhir_server(hook_request(server), STRICT, None)
    # the documented test setting lifts it
    relaxed = Config.for_testing(allow_plain_http_fhir=True)
    assert check_fhir_server(hook_request(server), relaxed, None) is None


def test_without_a_token_nothing_is_fetched_unless_open_servers_are_allowed() -> None:
    request = hook_request("http://ehr.example.org/fhir", token=False)
    why = check_fhir_server(request, STRICT, None)
    assert why is not None
    assert "CDS_ALLOW_OPEN_FHIR_SERVERS=true" in why
    open_servers = Config.for_testing(allow_open_fhir_servers=True)
    assert check_fhir_server(request, open_servers, None) is None


def test_a_token_needs_a_fhir_server() -> None:
    with pytest.raises(BadRequest, match="fhirServer is required"):
        check_fhir_server(hook_request(None), STRICT, None)
    assert check_fhir_server(hook_request(None, token=False), STRICT, None) is None


def test_the_issuers_list_admits_only_its_servers_in_any_spelling() -> None:
    allowed = frozenset({fhir_base("https://ehr.example.org/fhir/R4")})
    for spelled in (
        "https://ehr.example.org/fhir/R4",
        "https://EHR.example.org/fhir/R4/",
        "https://ehr.example.org:443/fhir/R4",
    ):
        assert check_fhir_server(hook_request(spelled), STRICT, allowed) is None
    for other in (
        "https://ehr.example.org/fhir/R5",
        "https://ehr.example.org/fhir/R4/Patient",
        "https://ehr.example.org:8443/fhir/R4",
        "https://evil.example/fhir/R4",
        "https://ehr.example.org/fhir/R4?x=1",
    ):
        for token in (True, False):  # without a token too: the list is checked first
            with pytest.raises(BadRequest, match="not one of the FHIR servers") as info:
                check_fhir_server(hook_request(other, token), STRICT, allowed)
            assert "ehr.example" not in info.value.args[0]  # nothing echoed back


def test_fhir_base_is_one_spelling_and_refuses_what_is_not_a_base_url() -> None:
    assert fhir_base("HTTPS://Ehr.Example.org:443/fhir/") == "https://ehr.example.org/fhir"
    assert fhir_base("http://127.0.0.1:80") == "http://127.0.0.1"
    assert fhir_base("http://[::1]:8103/fhir") == "http://[::1]:8103/fhir"
    for bad in ("ftp://x/fhir", "https:///fhir", "https://u:p@x/fhir", "https://x/f#a",
                "https://x/f?q=1", "https://x:99999/fhir"):
        with pytest.raises(ValueError, match="not a FHIR base URL"):
            fhir_base(bad)
    assert is_loopback_host("LOCALHOST")
    assert not is_loopback_host("0.0.0.0")


def test_the_route_applies_it_before_any_fetch(client: FlaskClient) -> None:
    body = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "http://ehr.example.org/fhir",
        "fhirAuthorization": TOKEN,
        "context": {
            "patientId": "p1",
            "userId": "Practitioner/1",
            "draftOrders": {"resourceType": "Bundle", "entry": []},
        },
    }
    response = client.post("/cds-services/ixazomib-order-sign", json=body)
    assert response.status_code == 400
    assert "https" in response.get_json()["issue"][0]["diagnostics"]
