"""ixazomib-order-select: the order-sign checks, run on the orders selected in order entry."""

from __future__ import annotations

from cds_service.rules.cards import render
from cds_service.rules.engine import decide_orders, drafts_need_record
from cds_service.rules.inputs import HOOK_ORDER_SELECT, JsonDict
from cds_service.services.context import HookContext, read_draft_orders, read_patient_id
from cds_service.services.registry import CdsService


def read_context(context: JsonDict) -> HookContext:
    patient_id = read_patient_id(context, user_required=True)
    return read_draft_orders(context, patient_id, selected=True)


SERVICE = CdsService(
    id="ixazomib-order-select",
    hook=HOOK_ORDER_SELECT,
    title="Ixazomib (NINLARO) order check at selection",
    description="The order-sign checks, run early when ixazomib is selected in order entry.",
    read_context=read_context,
    decide=decide_orders,
    render=render,
    context_bundles=("draftOrders",),
    needs_record=drafts_need_record,
)
