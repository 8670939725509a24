"""The three CDS services this product offers, and how each hook's context is read.

Discovery (GET /cds-services) is rendered from ``SERVICES``; the prefetch templates come from
the rules' own list of data needs, so what is advertised is exactly what the rules read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from cds_service.errors import BadRequest
from cds_service.fhir.patient import about_another_patient, another_patient
from cds_service.rules.data_needs import DATA_NEEDS
from cds_service.rules.inputs import (
    HOOK_LAB_RESULT,
    HOOK_ORDER_SELECT,
    HOOK_ORDER_SIGN,
    HOOK_PATIENT_VIEW,
    JsonDict,
)

MAX_CONTEXT_ENTRIES = 100  # draft orders or new results in one call; more is not an EHR's call

# A reference to a resource: relative (`MedicationRequest/1`) or absolute, optionally versioned.
_RESOURCE_REFERENCE = re.compile(
    r"(?:https?://\S+/)?([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str

    def discovery(self) -> JsonDict:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": {need.key: need.query for need in DATA_NEEDS},
            "usageRequirements": (
                "Send fhirServer with fhirAuthorization (read access to the patient's "
                "MedicationRequest, Medication, Observation, AdverseEvent, Condition, Procedure "
                "and AllergyIntolerance) unless every prefetch key is fulfilled."
            ),
        }


SERVICES: dict[str, ServiceDefinition] = {
    service.id: service
    for service in (
        ServiceDefinition(
            id="ixazomib-order-sign",
            hook=HOOK_ORDER_SIGN,
            title="Ixazomib (NINLARO) order check at signing",
            description=(
                "Checks a draft ixazomib order against the NINLARO label: dose level owed after "
                "toxicities, starting dose in hepatic or renal impairment, the new-cycle blood "
                "count gate, dosing errors, interactions and pregnancy."
            ),
        ),
        ServiceDefinition(
            id="ixazomib-order-select",
            hook=HOOK_ORDER_SELECT,
            title="Ixazomib (NINLARO) order check at selection",
            description=(
                "The order-sign checks, run early when ixazomib is selected in order entry."
            ),
        ),
        ServiceDefinition(
            id="ixazomib-lab-result",
            hook=HOOK_LAB_RESULT,
            title="Ixazomib (NINLARO) lab result check",
            description=(
                "Reads new ANC and platelet results of a patient on ixazomib and advises holding "
                "ixazomib and lenalidomide below the label thresholds, and how to resume on "
                "recovery. Custom hook org.ixazomib-cds.lab-result (docs/lab-result-hook.md)."
            ),
        ),
        ServiceDefinition(
            id="ixazomib-patient-view",
            hook=HOOK_PATIENT_VIEW,
            title="Ixazomib (NINLARO) treatment course",
            description=(
                "When the chart of a patient on ixazomib opens: one card with the dose level "
                "and how it was reached, holds in force and what ends them, the cycle and day, "
                "the next dose, the new-cycle gate and the label's administration instructions; "
                "a warning or critical indicator only when something is due now."
            ),
        ),
    )
}


@dataclass(frozen=True)
class HookContext:
    """The context fields the rules read, checked against the hook's definition."""

    patient_id: str
    draft_orders: list[JsonDict]
    selections: list[str]
    new_observations: list[JsonDict]
    bundled_medications: dict[str, JsonDict]  # Medication resources sent beside the orders


def read_context(hook: str, context: JsonDict) -> HookContext:
    patient_id = _string(context, "patientId", required=True)
    _string(context, "userId", required=hook != HOOK_LAB_RESULT)
    _string(context, "encounterId", required=False)
    selections: list[str] = []
    draft_orders: list[JsonDict] = []
    observations: list[JsonDict] = []
    medications: dict[str, JsonDict] = {}
    if hook in (HOOK_ORDER_SIGN, HOOK_ORDER_SELECT):
        if context.get("draftOrders") is None:
            raise BadRequest(_no_draft_orders(hook, context.get("selections")))
        entries = _bundle_resources(context, "draftOrders")
        _refuse_other_patients("draftOrders", entries, "MedicationRequest", patient_id)
        draft_orders = [r for r in entries if r.get("resourceType") != "Medication"]
        medications = _medications_by_reference(context["draftOrders"])
        if hook == HOOK_ORDER_SELECT:
            raw = context.get("selections")
            if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
                raise BadRequest(
                    "context.selections must be a list of references, e.g. "
                    '["MedicationRequest/103"]'
                )
            selections = _selected_drafts(raw, draft_orders)
    elif hook == HOOK_LAB_RESULT:
        bundle = context.get("observations")
        if isinstance(bundle, dict) and bundle.get("type") not in (None, "collection"):
            raise BadRequest("context.observations must be a Bundle of type collection")
        entries = _bundle_resources(context, "observations")
        _refuse_other_patients("observations", entries, "Observation", patient_id)
        observations = [r for r in entries if r.get("resourceType") == "Observation"]
    return HookContext(patient_id, draft_orders, selections, observations, medications)


def _string(context: JsonDict, name: str, *, required: bool) -> str:
    value = context.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"context.{name} is required and must be a non-empty string")
    return value


def _no_draft_orders(hook: str, selections: object) -> str:
    """The 400 for an order hook without ``context.draftOrders`` (REQUIRED at both hooks in
    CDS Hooks 2.0): what is missing, which order went unchecked, what to send. Not a card:
    without the drafts the service cannot tell whether the selected order is ixazomib at all,
    and a card on every order anyone selects would be noise; order-sign checks the order."""
    if hook == HOOK_ORDER_SIGN:
        return (
            "context.draftOrders is required for order-sign: the Bundle of the draft orders "
            "being signed (CDS Hooks 2.0); no order was checked."
        )
    named = [s for s in selections if isinstance(s, str)] if isinstance(selections, list) else []
    if not named:
        unchecked = "no order was checked"
    elif len(named) == 1:
        unchecked = f"the selected order {named[0]} was not checked"
    else:
        shown = ", ".join(named[:3]) + (f" and {len(named) - 3} more" if len(named) > 3 else "")
        unchecked = f"the selected orders {shown} were not checked"
    return (
        "context.draftOrders is required for order-select: the Bundle of the draft orders that "
        f"context.selections names (CDS Hooks 2.0); {unchecked}. Send the draft orders in "
        "context.draftOrders; the order is checked at order-sign, with the drafts sent there."
    )


def _bundle_resources(context: JsonDict, name: str) -> list[JsonDict]:
    bundle = context.get(name)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest(f"context.{name} must be a FHIR Bundle")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest(f"context.{name}.entry must be a list")
    if len(entries) > MAX_CONTEXT_ENTRIES:
        raise BadRequest(
            f"context.{name} has {len(entries)} entries; at most {MAX_CONTEXT_ENTRIES} are accepted"
        )
    resources: list[JsonDict] = []
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise BadRequest(f"context.{name}.entry[{index}] has no resource")
        kind = resource["resourceType"]
        if not is_r4_resource_type(kind):
            raise BadRequest(
                f"context.{name}.entry[{index}] is a {kind}, which is not a FHIR R4 resource "
                "(an older FHIR version?); this service reads FHIR R4"
            )
        identity = (kind, str(resource.get("id")))
        if resource.get("id") is not None and identity in seen:
            raise BadRequest(
                f"context.{name}.entry[{index}] repeats {kind}/{identity[1]} "
                f"(entry[{seen[identity]}]); advice about it would be ambiguous"
            )
        seen[identity] = index
        resources.append(resource)
    return resources


def _selected_drafts(selections: list[str], drafts: list[JsonDict]) -> list[str]:
    """``selections`` as ``Type/id`` of the drafts they name: an absolute URL or a versioned
    reference to a draft names it too. A selection that names no draft order is refused: the
    order the clinician selected would otherwise go unchecked, in silence."""
    present = {
        f"{d.get('resourceType')}/{d['id']}": d for d in drafts if isinstance(d.get("id"), str)
    }
    named = []
    for selection in selections:
        match = _RESOURCE_REFERENCE.fullmatch(selection)
        reference = f"{match.group(1)}/{match.group(2)}" if match else selection
        if reference not in present:
            raise BadRequest(
                f"context.selections names {selection!r}, which is not among "
                'context.draftOrders (expected e.g. "MedicationRequest/<draft id>")'
            )
        named.append(reference)
    return named


def _refuse_other_patients(
    name: str, resources: list[JsonDict], kind: str, patient_id: str
) -> None:
    """Refuse a context resource that is about another patient than ``context.patientId``.

    The rules take every draft order and new result of the request as this patient's: another
    patient's low platelet count would hold this patient's ixazomib. Such a request is broken at
    the EHR, so it is refused (400) rather than answered for either patient. A subject that is
    absent, or in a form that cannot be compared (``urn:uuid:``), is taken as this patient's:
    refusing what cannot be shown to be wrong would fail correct requests. ``resources`` are the
    Bundle's entries in order, so the index named is the entry's.
    """
    for index, resource in enumerate(resources):
        if resource.get("resourceType") != kind:
            continue
        named = about_another_patient(resource, patient_id)
        if named is None:
            continue
        identity = f"{kind}/{resource['id']}" if isinstance(resource.get("id"), str) else kind
        where = f"context.{name}.entry[{index}] ({identity})"
        raise BadRequest(another_patient(where, named, patient_id))


@cache
def is_r4_resource_type(name: str) -> bool:
    try:
        get_fhir_model_class(name)
    except (KeyError, ValueError, ImportError, AttributeError):
        return False
    return True


def _medications_by_reference(bundle: Any) -> dict[str, JsonDict]:
    """Medication entries of the draftOrders Bundle, findable by `Medication/id` or fullUrl."""
    found: dict[str, JsonDict] = {}
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        if resource.get("resourceType") != "Medication":
            continue
        if isinstance(resource.get("id"), str):
            found[f"Medication/{resource['id']}"] = resource
        if isinstance(entry.get("fullUrl"), str):
            found[entry["fullUrl"]] = resource
    return found
