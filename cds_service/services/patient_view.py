"""ixazomib-patient-view: the ixazomib course at a glance, when the chart of a patient on it
opens (CDS Hooks 2.0 patient-view)."""

from __future__ import annotations

from cds_service.rules.cards import course_card
from cds_service.rules.decisions.patient_view import CourseView
from cds_service.rules.engine import decide_course, screen_medication_list
from cds_service.rules.inputs import HOOK_PATIENT_VIEW, JsonDict
from cds_service.rules.prefetch_keys import MEDICATION_REQUESTS
from cds_service.services.context import HookContext, read_patient_id
from cds_service.services.registry import CdsService, Screening


def read_context(context: JsonDict) -> HookContext:
    return HookContext(read_patient_id(context, user_required=True))


def render(view: CourseView | None) -> list[JsonDict]:
    return [] if view is None else [course_card(view)]  # silent when not on ixazomib


SERVICE = CdsService(
    id="ixazomib-patient-view",
    hook=HOOK_PATIENT_VIEW,
    title="Ixazomib (NINLARO) treatment course",
    description=(
        "When the chart of a patient on ixazomib opens: one card with the dose level "
        "and how it was reached, holds in force and what ends them, the cycle and day, "
        "the next dose, the new-cycle gate and the label's administration instructions; "
        "a warning or critical indicator only when something is due now."
    ),
    read_context=read_context,
    decide=decide_course,
    # most calls are about patients who take no ixazomib: told from the medication list
    screening=Screening(reads=(MEDICATION_REQUESTS,), screen=screen_medication_list),
    render=render,
)
