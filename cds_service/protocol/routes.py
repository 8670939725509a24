"""HTTP routes: discovery, the services of the registry, feedback, liveness, readiness and
metrics.

Kept thin, and one way: parse the envelope, look up the service (``cds_service.services``),
read its context, gather the record (first what the service screens the call with, the rest
only when its screen says it is needed), decide (the service's pure rules), render the cards
and record the audit trail; no step calls back into an earlier one. Every error becomes an
OperationOutcome (``install_error_handlers``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from cds_service import logs, metrics
from cds_service.auth import AuthenticationError
from cds_service.errors import (
    BadRequest,
    CdsError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    operation_outcome,
)
from cds_service.exact_json import loads_exact, why_invalid
from cds_service.fhir.errors import PrefetchRefused, RequiredDataMissing
from cds_service.fhir.record import RecordGathering, require
from cds_service.protocol.envelope import (
    Coding,
    FeedbackRequest,
    HookRequest,
    loads_hook_request,
    parse_model,
    parse_timestamp,
)
from cds_service.protocol.fhir_policy import check_fhir_server, not_fetched
from cds_service.rules.inputs import HookCall, JsonDict
from cds_service.services import SERVICES, CdsService
from cds_service.state import state
from cds_service.store.models import CardAudit, FeedbackItem

log = logging.getLogger(__name__)
RECOMMENDATION = "org.ixazomib-cds.recommendation"
JSON_TYPES = ("application/json", "application/fhir+json")

cds = Blueprint("cds", __name__)
operations = Blueprint("operations", __name__)


@cds.before_request
def authenticate() -> None:
    g.started = time.perf_counter()
    if request.method == "OPTIONS":  # CORS preflight carries no token
        return
    authenticator = state().authenticator
    if authenticator is None:
        return
    base = state().config.service_base
    try:
        claims = authenticator.verify(
            request.headers.get("Authorization"), [base, base + request.path]
        )
    except AuthenticationError as error:
        log.info("authentication refused: %s", error)
        raise Unauthorized("Authentication required.") from None
    g.allowed_fhir_servers = authenticator.fhir_servers(claims["iss"])


@cds.get("/cds-services")
def discovery() -> Response:
    return jsonify({"services": [service.discovery() for service in SERVICES.values()]})


@cds.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    service = _service(service_id)
    body = read_json_body(loads_hook_request)  # the prefetch values decoded when read
    hook_request = parse_model(HookRequest, body, "CDS Hooks 2.0 request")
    logs.set_hook_instance(str(hook_request.hookInstance))
    logs.set_service(service.id)
    if hook_request.hook != service.hook:
        raise BadRequest(
            f"Service {service.id} answers the hook {service.hook!r}, not {hook_request.hook!r}."
        )
    current = state()
    why_not_fetched = check_fhir_server(hook_request, current.config, g.get("allowed_fhir_servers"))
    context = service.read_context(hook_request.context)
    call = context.call(
        hook=service.hook,
        service_id=service.id,
        hook_instance=str(hook_request.hookInstance),
        now=datetime.now(UTC),
    )
    try:
        with RecordGathering(
            current.fhir,
            patient_id=context.patient_id,
            prefetch=hook_request.prefetch,
            fhir_server=hook_request.fhirServer if why_not_fetched is None else None,
            access_token=(
                hook_request.fhirAuthorization.access_token
                if hook_request.fhirAuthorization
                else None
            ),
            draft_orders=context.draft_orders,
            bundled_medications=context.bundled_medications,
        ) as gathering:
            first = gathering.gather(service.screening_needs)
            screened = service.screening.screen(call, first, current.rule_settings)
            if not screened.rest_needed:  # e.g. not on ixazomib: nothing more to fetch or say
                metrics.record_request(service.id, 200, time.perf_counter() - g.started)
                return jsonify({"cards": []})
            record = gathering.gather(service.data_needs)  # the rest, into the same record
        if why_not_fetched is not None:  # nothing was fetched: say why
            not_fetched(record, why_not_fetched)
        require(record, service.data_needs)
    except PrefetchRefused as error:  # the client's request is broken
        raise BadRequest(error.message, details=error.details) from None
    except RequiredDataMissing as error:
        raise PreconditionFailed(error.message, details=error.details) from None
    decisions = service.decide(call, record, current.rule_settings, screened.medications)
    cards = service.render(decisions)
    _audit(call, cards)
    metrics.record_request(service.id, 200, time.perf_counter() - g.started)
    return jsonify({"cards": cards})


@cds.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    service = _service(service_id)
    body = parse_model(FeedbackRequest, read_json_body(loads_exact), "CDS Hooks feedback request")
    items = []
    for entry in body.feedback:
        reason = (entry.overrideReason.reason or Coding()) if entry.overrideReason else Coding()
        items.append(
            FeedbackItem(
                card_uuid=entry.card,
                outcome=entry.outcome,
                accepted_suggestion_ids=tuple(s.id for s in entry.acceptedSuggestions),
                override_reason_code=reason.code,
                override_reason_system=reason.system,
                override_reason_display=reason.display,
                user_comment=entry.overrideReason.userComment if entry.overrideReason else None,
                outcome_timestamp=parse_timestamp(entry.outcomeTimestamp),
            )
        )
    result = state().store.record_feedback(service.id, items)
    for item in items:
        metrics.record_feedback(item.outcome)
    return jsonify({"stored": result.stored, "duplicates": result.duplicates})


@operations.get("/livez")
def livez() -> Response:
    """Liveness: the process answers requests. Touches no database, so that an outage of the
    database (which readiness reports) never gets a healthy process restarted."""
    return jsonify({"status": "ok"})


@operations.get("/healthz")
def healthz() -> tuple[Response, int, dict[str, str]]:
    """Readiness: 200 only while the database takes a write (a probe row is written)."""
    if not state().store.ping():
        outage = ServiceUnavailable("The database cannot be reached or written.")
        return jsonify(outage.to_operation_outcome()), outage.status, _retry_after(outage)
    return jsonify({"status": "ok"}), 200, {}


@operations.get("/openapi.yaml")
def openapi_description() -> Response:
    """The OpenAPI 3.1 description of this HTTP API, kept in the package beside the code."""
    text = resources.files("cds_service").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return Response(text, content_type="application/yaml")


@operations.get("/metrics")
def metrics_endpoint() -> Response:
    body, content_type = metrics.metrics_response()
    return Response(body, content_type=content_type)


def read_json_body(decode: Callable[[bytes], Any]) -> Any:
    """The request body as JSON with exact numbers (see ``exact_json``), or a 4xx that says
    what's wrong."""
    if request.mimetype not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"Send the body as application/json, not {request.mimetype or 'no Content-Type'}."
        )
    try:
        raw = request.get_data(cache=False)
    except (ParseException, OSError) as error:
        # gunicorn reads a chunked body as it is asked for; a broken chunk surfaces here.
        raise BadRequest(f"The request body is malformed ({type(error).__name__}).") from None
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is None and len(raw) >= limit:  # chunked: cut at the limit
        raise PayloadTooLarge(f"The body is larger than the limit of {limit} bytes.")
    try:
        return decode(raw)
    except UnicodeDecodeError:
        raise BadRequest("The body is not valid UTF-8.") from None
    except RecursionError:
        raise BadRequest("The body's JSON is nested too deeply.") from None
    except ValueError as error:
        try:  # the parser may stop at a byte that is not UTF-8 (a UTF-16 BOM) before decoding
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("The body is not valid UTF-8.") from None
        raise BadRequest(f"The body is not valid JSON: {why_invalid(raw, error)}") from None


def _service(service_id: str) -> CdsService[Any]:
    service = SERVICES.get(service_id)
    if service is None:
        raise NotFound(
            f"There is no CDS service {service_id!r}; GET /cds-services lists the services."
        )
    return service


def _audit(call: HookCall, cards: list[JsonDict]) -> None:
    current = state()
    served_at = datetime.now(UTC)
    entries = []
    for card in cards:
        recommendation = (card.get("extension") or {}).get(RECOMMENDATION)
        rule = recommendation.get("rule") if isinstance(recommendation, dict) else None
        metrics.record_card(rule or "none", str(card.get("indicator")))
        entries.append(
            CardAudit(
                hook_instance=call.hook_instance,
                service_id=call.service_id,
                rule=rule,
                recommendation=recommendation,
                card_uuid=str(card.get("uuid")),
                suggestion_uuids=tuple(str(s.get("uuid")) for s in card.get("suggestions", [])),
                indicator=str(card.get("indicator")),
                summary=str(card.get("summary")),
                served_at=served_at,
                patient_ref=f"Patient/{call.patient_id}"
                if current.config.audit_patient_id
                else None,
            )
        )
    if not entries:
        return
    try:
        current.store.record_cards(entries)
    except Exception:  # the clinician still gets the advice; operations sees the failure
        log.exception("could not record the audit trail for %d cards", len(entries))


def _retry_after(error: ServiceUnavailable) -> dict[str, str]:
    return {"Retry-After": str(error.retry_after_seconds)}


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(CdsError)
    def _cds_error(error: CdsError) -> tuple[Response, int, dict[str, str]]:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
        if isinstance(error, ServiceUnavailable):
            headers = _retry_after(error)
        if request.blueprint == "cds" and request.view_args and "service_id" in request.view_args:
            elapsed = time.perf_counter() - g.get("started", time.perf_counter())
            metrics.record_request(str(request.view_args["service_id"]), error.status, elapsed)
        return jsonify(error.to_operation_outcome()), error.status, headers

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_: RequestEntityTooLarge) -> tuple[Response, int]:
        limit = app.config["MAX_CONTENT_LENGTH"]
        error = PayloadTooLarge(f"The body is larger than the limit of {limit} bytes.")
        return jsonify(error.to_operation_outcome()), error.status

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        if status == 404:
            mapped: CdsError = NotFound(f"There is nothing at {request.path}.")
        elif status == 405:
            mapped = MethodNotAllowed(f"{request.method} is not allowed on {request.path}.")
        else:
            mapped = BadRequest(error.description or "The request could not be understood.")
            mapped.status = status if 400 <= status < 500 else 400
        response = jsonify(mapped.to_operation_outcome())
        if status == 405 and (allowed := dict(error.get_headers()).get("Allow")):
            response.headers["Allow"] = allowed  # RFC 9110: a 405 names the methods allowed
        return response, mapped.status

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unexpected error")  # the traceback stays in the server's log
        outcome = operation_outcome("exception", "The service failed; the failure is logged.")
        return jsonify(outcome), 500

    @app.after_request
    def _cors(response: Response) -> Response:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
        return response
