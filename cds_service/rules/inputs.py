"""What the rules engine is given: the hook call and the patient's record, as plain data.

This module is the contract between the protocol/data-access layers (which fill these in
from the CDS Hooks request, its prefetch and the EHR's FHIR server) and the pure rules
engine (which turns them into cards). No Flask, no I/O here.

FHIR resources travel as raw JSON dicts, parsed with ``parse_float=Decimal`` so numbers are
exact. The engine picks out the resources it needs and validates only those with
``fhir.resources.R4B``, so one malformed resource it does not use cannot fail a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JsonDict = dict[str, Any]

# The hooks the services answer (each service declares its own in cds_service.services).
HOOK_ORDER_SIGN = "order-sign"
HOOK_ORDER_SELECT = "order-select"
HOOK_LAB_RESULT = "org.ixazomib-cds.lab-result"
HOOK_PATIENT_VIEW = "patient-view"


@dataclass(frozen=True)
class HookCall:
    """The parts of a CDS Hooks request the rules look at, read once by the service's context
    reader (``cds_service.services``): nothing downstream reads the request's Bundles again."""

    hook: str
    service_id: str
    hook_instance: str
    patient_id: str
    now: datetime  # time zone aware: when the call arrived
    # the draft MedicationRequests of context.draftOrders (resources, not Bundle entries)
    draft_orders: list[JsonDict] = field(default_factory=list)
    selections: list[str] = field(default_factory=list)  # order-select: "MedicationRequest/103"
    # lab-result: the Observations of context.observations
    new_observations: list[JsonDict] = field(default_factory=list)


@dataclass(frozen=True)
class DataNeed:
    """One category of patient data the rules read, and the STU2 prefetch query that brings it.

    ``key`` is the prefetch key advertised at discovery. ``required`` data that can be neither
    prefetched nor fetched makes the call fail with 412; missing optional data is named on
    the cards ("not considered").
    """

    key: str
    resource_type: str
    query: str  # prefetch template, STU2 tokens only
    required: bool
    description: str


@dataclass
class PatientRecord:
    """Everything the service could gather about the patient.

    ``resources`` maps a data-need key (see ``DATA_NEEDS``) to the resources found for it
    (an empty list means "looked, found nothing"). ``unavailable`` maps a key to a plain-words
    reason when that data could not be had (the client sent an OperationOutcome, the FHIR
    server failed, no FHIR server was given...). ``medications`` holds Medication resources
    resolved for ``medicationReference`` (contained ones stay inside their MedicationRequest),
    keyed by reference string as it appears in the order (e.g. "Medication/abc").
    ``left_out`` maps a key to why resources that arrived for it were not used (the FHIR
    server answered another patient's data to a query about this patient).
    """

    resources: dict[str, list[JsonDict]] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)
    medications: dict[str, JsonDict] = field(default_factory=dict)
