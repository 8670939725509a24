"""ixazomib-order-select: the order-sign checks, run on the orders selected in order entry."""

from __future__ import annotations

from cds_service.errors import BadRequest
from cds_service.rules.cards import render
from cds_service.rules.engine import decide_orders, screen_drafts
from cds_service.rules.inputs import HOOK_ORDER_SELECT, JsonDict
from cds_service.services.context import HookContext, read_draft_orders, read_patient_id
from cds_service.services.registry import CdsService, Screening


def read_context(context: JsonDict) -> HookContext:
    patient_id = read_patient_id(context, user_required=True)
    if context.get("draftOrders") is None:
        raise BadRequest(_no_draft_orders(context.get("selections")))
    return read_draft_orders(context, patient_id, selected=True)


def _no_draft_orders(selections: object) -> str:
    """The 400 for order-select without ``context.draftOrders`` (REQUIRED in CDS Hooks 2.0):
    what is missing, which order went unchecked, what to send. Not a card: without the drafts
    the service cannot tell whether the selected order is ixazomib at all, and a card on every
    order anyone selects would be noise; order-sign checks the order."""
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


SERVICE = CdsService(
    id="ixazomib-order-select",
    hook=HOOK_ORDER_SELECT,
    title="Ixazomib (NINLARO) order check at selection",
    description="The order-sign checks, run early when ixazomib is selected in order entry.",
    read_context=read_context,
    decide=decide_orders,
    render=render,
    context_bundles=("draftOrders",),
    screening=Screening(screen=screen_drafts),  # the drafts alone tell
)
