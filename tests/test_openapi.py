"""The OpenAPI 3.1 description (cds_service/openapi.yaml) against the real service.

1. The document is a valid OpenAPI 3.1 description and is served at GET /openapi.yaml.
2. Real responses (Flask test client: discovery, every clinical scenario, every error status)
   match the response schemas (jsonschema, draft 2020-12).
3. Schemathesis generates requests from the description and runs them against the RUNNING
   service (gunicorn, 2 workers, authentication on, a fresh token per request): no 5xx, every
   status and body as described, every error an OperationOutcome.
4. A real store outage (the running service's SQLite file deleted): every operation that needs
   the database answers the 503 it describes, body and Retry-After header checked by
   schemathesis.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from builders import empty_prefetch, order_sign_request
from faulty_fhir_server import closed_port_url
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from live_server import LiveService, start_service
from reliability.support import SPEC_PATH, assert_operation_outcome, schema_errors, spec

from cds_service.fixtures import Scenario, load_scenarios

SERVICES = (
    "ixazomib-order-sign",
    "ixazomib-order-select",
    "ixazomib-lab-result",
    "ixazomib-patient-view",
)
MAX_EXAMPLES = int(os.environ.get("CDS_SCHEMATHESIS_EXAMPLES", "40"))


# -- 1. the document ----------------------------------------------------------------------------


def test_the_description_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    document = spec()
    assert document["openapi"].startswith("3.1")
    validator.validate(document)


def test_every_route_of_the_service_is_described(client: FlaskClient) -> None:
    described = {path.replace("{service_id}", "<service_id>") for path in spec()["paths"]}
    routes = {
        rule.rule
        for rule in client.application.url_map.iter_rules()
        if rule.endpoint not in ("static", "operations.metrics_endpoint")
    }
    expected = {r for r in routes if r != "/cds-services/<service_id>"}
    expected |= {f"/cds-services/{service}" for service in SERVICES}
    assert described == expected


def test_the_service_serves_its_description(client: FlaskClient) -> None:
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    assert yaml.safe_load(response.get_data(as_text=True)) == spec()
    assert response.get_data(as_text=True) == SPEC_PATH.read_text(encoding="utf-8")


# -- 2. real responses against the response schemas ---------------------------------------------


def test_discovery_matches_the_description(client: FlaskClient) -> None:
    body = client.get("/cds-services").get_json()
    assert not schema_errors("Discovery", body)
    assert [s["id"] for s in body["services"]] == list(SERVICES)
    paths = spec()["paths"]
    for service in body["services"]:
        operation = paths[f"/cds-services/{service['id']}"]["post"]
        schema = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        name = schema.rsplit("/", 1)[1]
        hook = next(
            part["properties"]["hook"]["const"]
            for part in spec()["components"]["schemas"][name]["allOf"][1:]
        )
        assert hook == service["hook"]


@pytest.mark.parametrize("path", ["/livez", "/healthz"])
def test_health_matches_the_description(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert not schema_errors("HealthStatus", response.get_json())


def _scenario_ids() -> list[str]:
    return [scenario.id for scenario in load_scenarios()]


@pytest.fixture(scope="module")
def all_scenarios() -> dict[str, Scenario]:
    return {scenario.id: scenario for scenario in load_scenarios()}


@pytest.mark.parametrize("scenario_id", _scenario_ids())
def test_scenario_requests_and_answers_match_the_description(
    client: FlaskClient, all_scenarios: dict[str, Scenario], scenario_id: str
) -> None:
    scenario = all_scenarios[scenario_id]
    request = json.loads(json.dumps(scenario.cds_request(prefetch=True), default=str))
    request_schema = {
        "ixazomib-order-sign": "OrderSignRequest",
        "ixazomib-order-select": "OrderSelectRequest",
        "ixazomib-lab-result": "LabResultRequest",
        "ixazomib-patient-view": "PatientViewRequest",
    }[scenario.service]
    assert not schema_errors(request_schema, request), "the description refuses a real request"
    response = client.post(f"/cds-services/{scenario.service}", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert not schema_errors("CdsResponse", response.get_json())


ERROR_CASES: list[tuple[str, str, dict[str, Any], int]] = [
    (
        "malformed JSON",
        "/cds-services/ixazomib-order-sign",
        {"data": b"{", "content_type": "application/json"},
        400,
    ),
    ("wrong hook", "/cds-services/ixazomib-lab-result", {"json": order_sign_request()}, 400),
    ("unknown service", "/cds-services/nope", {"json": order_sign_request()}, 404),
    ("unknown feedback service", "/cds-services/nope/feedback", {"json": {"feedback": []}}, 404),
    (
        "nothing prefetched",
        "/cds-services/ixazomib-order-sign",
        {"json": order_sign_request(prefetch={})},
        412,
    ),
    (
        "text/plain",
        "/cds-services/ixazomib-order-sign",
        {"data": b"{}", "content_type": "text/plain"},
        415,
    ),
    (
        "bad feedback",
        "/cds-services/ixazomib-order-sign/feedback",
        {"json": {"feedback": [{"card": "c", "outcome": "maybe"}]}},
        400,
    ),
]


@pytest.mark.parametrize(
    ("what", "path", "kwargs", "status"), ERROR_CASES, ids=[case[0] for case in ERROR_CASES]
)
def test_error_answers_are_described_operation_outcomes(
    client: FlaskClient, what: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    response = client.post(path, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert_operation_outcome(response.get_json())
    template = path if path in spec()["paths"] else "/cds-services/{service_id}/feedback"
    if template in spec()["paths"] and not path.startswith("/cds-services/nope"):
        assert str(status) in spec()["paths"][template]["post"]["responses"]


def test_feedback_answer_matches_the_description(client: FlaskClient) -> None:
    body = {
        "feedback": [
            {
                "card": str(uuid.uuid4()),
                "outcome": "accepted",
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
            }
        ]
    }
    response = client.post("/cds-services/ixazomib-order-sign/feedback", json=body)
    assert response.status_code == 200
    assert not schema_errors("FeedbackResult", response.get_json())


def test_413_states_the_limit(client: FlaskClient) -> None:
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    response = client.post(
        "/cds-services/ixazomib-order-sign",
        data=b" " * (limit + 1),
        content_type="application/json",
    )
    assert response.status_code == 413
    assert_operation_outcome(response.get_json(), mentions=f"limit of {limit} bytes")


def test_an_empty_prefetch_is_valid_by_the_description() -> None:
    assert not schema_errors("Prefetch", empty_prefetch())


def _with_draft_bundle_member(name: str, value: Any) -> dict[str, Any]:
    body = order_sign_request()
    body["context"]["draftOrders"][name] = value
    return body


# Members of a context Bundle no check reads: FHIR R4 constrains them, but a malformed one
# costs nothing (the service answers 200), and the description says so.
UNREAD_BUNDLE_MEMBERS = {
    "link url an object": ("link", [{"relation": "self", "url": {"href": "x"}}]),
    "link an object": ("link", {"relation": "self"}),
    "type a number": ("type", 5),
}


@pytest.mark.parametrize("case", list(UNREAD_BUNDLE_MEMBERS), ids=list(UNREAD_BUNDLE_MEMBERS))
def test_the_description_and_the_service_agree_on_unread_bundle_members(
    client: FlaskClient, case: str
) -> None:
    body = _with_draft_bundle_member(*UNREAD_BUNDLE_MEMBERS[case])
    assert not schema_errors("OrderSignRequest", body)
    response = client.post("/cds-services/ixazomib-order-sign", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)


FEEDBACK_OVERRIDE_REASONS: dict[str, tuple[Any, int]] = {
    "userComment null": ({"userComment": None}, 200),
    "reason null": ({"reason": None, "userComment": "seen"}, 200),
    "overrideReason null": (None, 200),
    "reason and comment": ({"reason": {"code": "c", "system": "urn:s"}, "userComment": ""}, 200),
    "userComment a number": ({"userComment": 5}, 400),
    "reason code a number": ({"reason": {"code": 5, "system": "urn:s"}}, 400),
    "reason code empty": ({"reason": {"code": ""}}, 400),
    "reason a string": ({"reason": "clinical-judgement"}, 400),
}


@pytest.mark.parametrize(
    "case", list(FEEDBACK_OVERRIDE_REASONS), ids=list(FEEDBACK_OVERRIDE_REASONS)
)
def test_the_description_and_the_service_agree_on_override_reasons(
    client: FlaskClient, case: str
) -> None:
    reason, status = FEEDBACK_OVERRIDE_REASONS[case]
    body = {
        "feedback": [
            {
                "card": str(uuid.uuid4()),
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-21T10:00:00Z",
                "overrideReason": reason,
            }
        ]
    }
    described_valid = not schema_errors("FeedbackRequest", body)
    response = client.post("/cds-services/ixazomib-order-sign/feedback", json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    assert described_valid == (status == 200), schema_errors("FeedbackRequest", body)


# -- 3. schemathesis against the running service -------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[LiveService]:
    service = start_service(
        workers=2,
        env={
            "CDS_FHIR_TIMEOUT_SECONDS": "0.5",
            "CDS_FHIR_DEADLINE_SECONDS": "1",
            "CDS_MAX_BODY_BYTES": str(256 * 1024),
        },
    )
    yield service
    service.stop()


def test_the_running_service_serves_a_loadable_description(live: LiveService) -> None:
    loaded = schemathesis.openapi.from_url(f"{live.base_url}/openapi.yaml")
    operations = {
        f"{op.method.upper()} {op.path}"
        for op in (result.ok() for result in loaded.get_all_operations())  # type: ignore[union-attr]
    }
    assert {
        "GET /cds-services",
        "GET /healthz",
        "POST /cds-services/{service_id}/feedback",
        *(f"POST /cds-services/{service}" for service in SERVICES),
    } <= operations


@schemathesis.check
def errors_are_operation_outcomes(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every non-2xx answer has a FHIR OperationOutcome body that says what was wrong."""
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{response.status_code} without a JSON body") from None
    errors = schema_errors("OperationOutcome", body)
    if errors:
        raise AssertionError(f"{response.status_code} body is not an OperationOutcome: {errors}")
    return True


CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
    errors_are_operation_outcomes,
]

# The file the service serves (test_the_service_serves_its_description checks they are the same).
# Loaded from the file, not from the live URL: the lazy fixture loader of schemathesis 4.32
# does not work with pytest 9 (it sets Function._nodeid, which pytest 9 no longer has).
schema = schemathesis.openapi.from_path(str(SPEC_PATH))
_REFUSED_FHIR = closed_port_url()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_the_running_service_keeps_to_its_description(case: Any, live: LiveService) -> None:
    body = getattr(case, "body", None)
    if isinstance(body, dict) and isinstance(body.get("fhirServer"), str):
        body["fhirServer"] = _REFUSED_FHIR  # loopback only: generated URLs are never contacted
    token = live.token("", aud=live.base_url)  # a fresh jti for every request
    headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    case.call_and_validate(base_url=live.base_url, headers=headers, checks=CHECKS, timeout=10)


def test_the_running_service_refuses_unauthenticated_calls_as_described(
    live: LiveService,
) -> None:
    for path in ("/cds-services", *(f"/cds-services/{s}" for s in SERVICES)):
        method = requests.get if path == "/cds-services" else requests.post
        response = method(live.base_url + path, timeout=5)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert_operation_outcome(response.json())


# -- 4. a real store outage against the description ----------------------------------------------


def _first_request_of(service: str) -> dict[str, Any]:
    scenario = next(s for s in load_scenarios() if s.service == service)
    request: dict[str, Any] = json.loads(
        json.dumps(scenario.cds_request(prefetch=True), default=str)
    )
    return request


def test_store_outage_answers_are_the_described_503s() -> None:
    """The SQLite file of a running service (authentication on) is deleted: discovery and the
    services (the jti replay check), feedback and /healthz answer 503; each answer is checked
    against its operation's description (status listed, OperationOutcome body, Retry-After)."""
    service = start_service(workers=1)
    try:
        assert requests.get(f"{service.base_url}/healthz", timeout=10).status_code == 200
        database = service.workdir / "cds.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        feedback = {
            "feedback": [
                {"card": "c", "outcome": "accepted", "outcomeTimestamp": "2026-11-21T10:00:00Z"}
            ]
        }
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("/cds-services", "GET", {}),
            *((f"/cds-services/{s}", "POST", {"body": _first_request_of(s)}) for s in SERVICES),
            (
                "/cds-services/{service_id}/feedback",
                "POST",
                {"path_parameters": {"service_id": SERVICES[0]}, "body": feedback},
            ),
            ("/healthz", "GET", {}),
            ("/livez", "GET", {}),
        ]
        statuses = {}
        for path, method, parts in calls:
            case = schema[path][method].Case(media_type="application/json", **parts)
            url_path = path.replace("{service_id}", SERVICES[0])
            headers = service.headers(url_path) if path.startswith("/cds-services") else {}
            response = case.call(base_url=service.base_url, headers=headers, timeout=20)
            statuses[path] = response.status_code
            # not_a_server_error is left out: a 503 is how an outage is described.
            case.validate_response(response, checks=CHECKS[1:], headers=headers)
            if path != "/livez":
                assert response.status_code == 503, (path, response.text[:300])
                assert response.headers.get("retry-after") == ["5"], (path, response.headers)
        assert statuses["/livez"] == 200, statuses  # liveness never touches the database
    finally:
        service.stop()
