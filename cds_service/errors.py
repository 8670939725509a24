"""The service's error hierarchy; each error knows its HTTP status and becomes an OperationOutcome.

Every non-2xx answer carries a FHIR OperationOutcome whose issue says, in words a user can act
on, what was wrong (service contract, "Errors"). Raise one of these anywhere in the request
path; the protocol layer turns it into the response.
"""

from __future__ import annotations

from typing import Any


class CdsError(Exception):
    """Base of every error that is answered to the client."""

    status = 500
    fhir_code = "exception"  # OperationOutcome.issue.code (http://hl7.org/fhir/issue-type)

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def to_operation_outcome(self) -> dict[str, Any]:
        return operation_outcome(self.fhir_code, self.message, self.details)


class BadRequest(CdsError):
    """Malformed JSON, not a CDS Hooks 2.0 request, or a hook the service does not answer."""

    status = 400
    fhir_code = "invalid"


class Unauthorized(CdsError):
    """Authentication failed. Answered as a bare 401: the body never says why."""

    status = 401
    fhir_code = "login"


class NotFound(CdsError):
    status = 404
    fhir_code = "not-found"


class MethodNotAllowed(CdsError):
    status = 405
    fhir_code = "not-supported"


class PayloadTooLarge(CdsError):
    status = 413
    fhir_code = "too-costly"


class UnsupportedMediaType(CdsError):
    status = 415
    fhir_code = "not-supported"


class PreconditionFailed(CdsError):
    """Data the rules require was neither prefetched nor fetchable from the FHIR server."""

    status = 412
    fhir_code = "incomplete"


class ServiceUnavailable(CdsError):
    """A dependency the answer needs (the database) is out of order: try again shortly.

    Answered 503 with ``Retry-After``; never a 401 (the caller's credentials are not at fault)
    and never a 500 (nothing is wrong with the request or the service's code)."""

    status = 503
    fhir_code = "transient"
    retry_after_seconds = 5


def operation_outcome(code: str, message: str, details: list[str] | None = None) -> dict[str, Any]:
    issues: list[dict[str, Any]] = [{"severity": "error", "code": code, "diagnostics": message}]
    issues += [
        {"severity": "error", "code": code, "diagnostics": detail} for detail in details or []
    ]
    return {"resourceType": "OperationOutcome", "issue": issues}
