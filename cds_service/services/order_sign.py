"""ixazomib-order-sign: the draft ixazomib orders checked when the clinician signs them."""

from __future__ import annotations

from cds_service.errors import BadRequest
from cds_service.rules.cards import render
from cds_service.rules.engine import decide_orders, screen_drafts
from cds_service.rules.inputs import HOOK_ORDER_SIGN, JsonDict
from cds_service.services.context import HookContext, read_draft_orders, read_patient_id
from cds_service.services.registry import CdsService, Screening


def read_context(context: JsonDict) -> HookContext:
    patient_id = read_patient_id(context, user_required=True)
    if context.get("draftOrders") is None:  # REQUIRED at order-sign (CDS Hooks 2.0)
        raise BadRequest(
            "context.draftOrders is required for order-sign: the Bundle of the draft orders "
            "being signed (CDS Hooks 2.0); no order was checked."
        )
    return read_draft_orders(context, patient_id, selected=False)


SERVICE = CdsService(
    id="ixazomib-order-sign",
    hook=HOOK_ORDER_SIGN,
    title="Ixazomib (NINLARO) order check at signing",
    description=(
        "Checks a draft ixazomib order against the NINLARO label: dose level owed after "
        "toxicities, starting dose in hepatic or renal impairment, the new-cycle blood "
        "count gate, dosing errors, interactions and pregnancy."
    ),
    read_context=read_context,
    decide=decide_orders,
    render=render,
    context_bundles=("draftOrders",),
    screening=Screening(screen=screen_drafts),  # the drafts alone tell
)
