"""Reading a hook's context: the parts every service's reader shares.

Each service's module reads its own hook's context with these; what comes out is a
``HookContext``, checked once: the draft orders (or new results) picked out of their Bundle,
refused when they are about another patient, and nothing downstream reads the Bundle again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from fhir.resources.R4B import get_fhir_model_class

from cds_service.errors import BadRequest
from cds_service.fhir.patient import about_another_patient, another_patient
from cds_service.rules.inputs import HookCall, JsonDict

MAX_CONTEXT_ENTRIES = 100  # draft orders or new results in one call; more is not an EHR's call

# A reference to a resource: relative (`MedicationRequest/1`) or absolute, optionally versioned.
_RESOURCE_REFERENCE = re.compile(
    r"(?:https?://\S+/)?([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?"
)


@dataclass(frozen=True)
class HookContext:
    """The context fields the rules read, checked against the hook's definition."""

    patient_id: str
    draft_orders: list[JsonDict] = field(default_factory=list)  # the draft MedicationRequests
    selections: list[str] = field(default_factory=list)  # order-select: "MedicationRequest/103"
    new_observations: list[JsonDict] = field(default_factory=list)
    bundled_medications: dict[str, JsonDict] = field(default_factory=dict)  # by reference

    def call(self, *, hook: str, service_id: str, hook_instance: str, now: datetime) -> HookCall:
        return HookCall(
            hook=hook,
            service_id=service_id,
            hook_instance=hook_instance,
            patient_id=self.patient_id,
            now=now,
            draft_orders=self.draft_orders,
            selections=self.selections,
            new_observations=self.new_observations,
        )


def read_patient_id(context: JsonDict, *, user_required: bool) -> str:
    """``context.patientId``, after checking the user and encounter fields every hook has."""
    patient_id = _string(context, "patientId", required=True)
    _string(context, "userId", required=user_required)
    _string(context, "encounterId", required=False)
    return patient_id


def read_draft_orders(context: JsonDict, patient_id: str, *, selected: bool) -> HookContext:
    """The order hooks: the draft MedicationRequests of ``context.draftOrders``, the Medications
    sent beside them and, when ``selected`` (order-select), the drafts ``context.selections``
    names."""
    entries = bundle_resources(context, "draftOrders")
    refuse_other_patients("draftOrders", entries, "MedicationRequest", patient_id)
    drafts = [r for r in entries if r["resourceType"] != "Medication"]
    selections: list[str] = []
    if selected:
        raw = context.get("selections")
        if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
            raise BadRequest(
                'context.selections must be a list of references, e.g. ["MedicationRequest/103"]'
            )
        selections = _selected_drafts(raw, drafts)
    return HookContext(
        patient_id,
        draft_orders=[r for r in drafts if r["resourceType"] == "MedicationRequest"],
        selections=selections,
        bundled_medications=_medications_by_reference(context["draftOrders"]),
    )


def _selected_drafts(selections: list[str], drafts: list[JsonDict]) -> list[str]:
    """``selections`` as ``Type/id`` of the drafts they name: an absolute URL or a versioned
    reference to a draft names it too. A selection that names no draft order is refused: the
    order the clinician selected would otherwise go unchecked, in silence."""
    present = {f"{d['resourceType']}/{d['id']}" for d in drafts if isinstance(d.get("id"), str)}
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


def _string(context: JsonDict, name: str, *, required: bool) -> str:
    value = context.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"context.{name} is required and must be a non-empty string")
    return value


def bundle_resources(context: JsonDict, name: str) -> list[JsonDict]:
    """The resources of the Bundle ``context.<name>``, in entry order, or a 400 saying why not."""
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


def refuse_other_patients(name: str, resources: list[JsonDict], kind: str, patient_id: str) -> None:
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


def _medications_by_reference(bundle: JsonDict) -> dict[str, JsonDict]:
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
