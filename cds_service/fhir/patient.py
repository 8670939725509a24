"""Whose data a resource is: the one check every resource passes, whatever path it came by.

Context, prefetch, FHIR searches, reads, paging and ``medicationReference`` reads all ask
``patient_of``. A resource whose patient cannot be read (no subject, or a form that cannot be
compared, such as ``urn:uuid:``) is taken as the request's patient's: refusing what cannot be
shown to be wrong would fail correct requests.
"""

from __future__ import annotations

import re
from typing import Any

# A reference that names a patient: relative (`Patient/p1`) or absolute
# (`https://ehr.example/fhir/Patient/p1`), optionally versioned. The id part is a FHIR id.
_PATIENT_REFERENCE = re.compile(
    r"(?:https?://\S+/)?Patient/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


def patient_of(resource: dict[str, Any]) -> str | None:
    """The id of the patient ``resource`` is about: a Patient's own id, else the patient that
    ``subject.reference`` (``patient`` in AllergyIntolerance) names; None when none is read."""
    if resource.get("resourceType") == "Patient":
        own = resource.get("id")
        return own if isinstance(own, str) else None
    subject = resource.get("subject", resource.get("patient"))
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str):
        return None
    match = _PATIENT_REFERENCE.fullmatch(reference)
    return match.group(1) if match else None


def about_another_patient(resource: dict[str, Any], patient_id: str) -> str | None:
    """The other patient's id when ``resource`` is about someone other than ``patient_id``."""
    named = patient_of(resource)
    return named if named is not None and named != patient_id else None


def another_patient(where: str, named: str, patient_id: str) -> str:
    """Why a request carrying another patient's data is refused (context and prefetch)."""
    return (
        f"{where} is about Patient/{named}, but this request is about Patient/{patient_id} "
        "(context.patientId); a request may carry only the data of the patient it is about"
    )
