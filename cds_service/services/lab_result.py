"""ixazomib-lab-result: new ANC and platelet results of a patient on ixazomib.

The hook is this product's own (org.ixazomib-cds.lab-result, docs/lab-result-hook.md): the EHR
calls it when results are filed, with the new Observations in ``context.observations``.
"""

from __future__ import annotations

from cds_service.errors import BadRequest
from cds_service.rules.cards import render
from cds_service.rules.engine import decide_new_results, screen_medication_list
from cds_service.rules.inputs import HOOK_LAB_RESULT, JsonDict
from cds_service.rules.prefetch_keys import MEDICATION_REQUESTS
from cds_service.services.context import (
    HookContext,
    bundle_resources,
    read_patient_id,
    refuse_other_patients,
)
from cds_service.services.registry import CdsService, Screening


def read_context(context: JsonDict) -> HookContext:
    patient_id = read_patient_id(context, user_required=False)  # results arrive without a user
    bundle = context.get("observations")
    if isinstance(bundle, dict) and bundle.get("type") not in (None, "collection"):
        raise BadRequest("context.observations must be a Bundle of type collection")
    entries = bundle_resources(context, "observations")
    refuse_other_patients("observations", entries, "Observation", patient_id)
    observations = [r for r in entries if r.get("resourceType") == "Observation"]
    return HookContext(patient_id, new_observations=observations)


SERVICE = CdsService(
    id="ixazomib-lab-result",
    hook=HOOK_LAB_RESULT,
    title="Ixazomib (NINLARO) lab result check",
    description=(
        "Reads new ANC and platelet results of a patient on ixazomib and advises holding "
        "ixazomib and lenalidomide below the label thresholds, and how to resume on "
        "recovery. Custom hook org.ixazomib-cds.lab-result (docs/lab-result-hook.md)."
    ),
    read_context=read_context,
    decide=decide_new_results,
    # most calls are about patients who take no ixazomib: told from the medication list
    screening=Screening(reads=(MEDICATION_REQUESTS,), screen=screen_medication_list),
    render=render,
    context_bundles=("observations",),
)
