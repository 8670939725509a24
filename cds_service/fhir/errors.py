"""The errors of the FHIR access layer, one base class (like fhir-py's ``BaseFHIRError``).

The layer knows nothing of HTTP answers to the EHR: the protocol layer maps ``PrefetchRefused``
to a 400 and ``RequiredDataMissing`` to a 412. ``FhirUnavailable`` never leaves the layer: a
query that fails becomes a reason in ``PatientRecord.unavailable``.
"""

from __future__ import annotations


class FhirError(Exception):
    """Base of every error raised by ``cds_service.fhir``."""

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class PrefetchRefused(FhirError):
    """The request's prefetch cannot be used as sent (the client's request is broken)."""


class RequiredDataMissing(FhirError):
    """Data the rules cannot do without was neither prefetched nor fetchable."""


class FhirUnavailable(FhirError):
    """The FHIR server could not give the data; the message says why in words fit for the EHR.

    ``reason`` is the detailed label for metrics (``metrics.FETCH_FAILURE_REASONS``); metrics
    are not client-visible, so it may say more than the message does.
    """

    def __init__(self, message: str, reason: str = "invalid_response") -> None:
        super().__init__(message)
        self.reason = reason
