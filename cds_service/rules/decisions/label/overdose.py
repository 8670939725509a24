"""Label 2.1 and 10: more than 4 mg in a week, or more than one dose a week, is an overdose."""

from __future__ import annotations

from decimal import Decimal

from cds_service.rules.facts import MedicationOrder
from cds_service.rules.units import plain

from ..model import Action, Decision, DrugAdvice, Indicator, Suggest, order_line
from .rule import OrderCheck

RULE = OrderCheck(
    id="overdose",
    section="2.1 and 10 (Overdosage)",
    reads="draft ixazomib order: dose (mg), frequency (timing)",
    label_text="More than 4 mg in a week or more than one dose a week: critical; correct the "
    "order to the dose due, once weekly.",
)

MAX_WEEKLY_MG = Decimal(4)
MAX_DOSES_PER_WEEK = Decimal(1)
_NOTE = (
    "Ixazomib is given once a week (days 1, 8 and 15 of a 28-day cycle); overdose has been fatal."
)


def decide(draft: MedicationOrder, due: Decimal | None, zone: str) -> Decision | None:
    """The overdose of a draft, corrected to the dose ``due``; None when it is none."""
    line = order_line(draft, zone)
    per_week = draft.doses_per_week
    too_often = per_week is not None and per_week > MAX_DOSES_PER_WEEK
    if draft.dose_mg is None:
        if not too_often:
            return None
        # More than one dose a week is an overdose whatever each dose is (label 2.1): the
        # frequency alone decides, and the correction sets the weekly schedule too.
        reasons = [
            f"{plain(per_week or Decimal(0))} doses a week (at most 1)",
            f"the dose cannot be read: {draft.dose_problem or 'no dose'}",
        ]
        return _overdose(draft, due, line, reasons, reasons[0], fix_frequency=True)
    dose = draft.dose_mg
    weekly = dose * per_week if per_week is not None else dose
    if not (dose > MAX_WEEKLY_MG or too_often or weekly > MAX_WEEKLY_MG):
        return None
    reasons = []
    if dose > MAX_WEEKLY_MG:
        reasons.append(f"{plain(dose)} mg per dose is above 4 mg")
    if too_often:
        reasons.append(f"{plain(per_week or Decimal(0))} doses a week (at most 1)")
    if weekly > MAX_WEEKLY_MG and not dose > MAX_WEEKLY_MG:
        reasons.append(f"{plain(weekly)} mg a week (at most 4 mg)")
    return _overdose(draft, due, line, reasons, "; ".join(reasons), too_often)


def _overdose(
    draft: MedicationOrder,
    due: Decimal | None,
    line: str,
    reasons: list[str],
    why: str,
    fix_frequency: bool,
) -> Decision:
    return Decision(
        rule=RULE.id,
        indicator=Indicator.CRITICAL,
        summary=f"Ixazomib overdose: {why}"[:139],
        ixazomib=DrugAdvice(Action.CORRECT_DOSE, due),
        evidence=(line, *reasons),
        notes=(_NOTE,),
        suggest=Suggest.UPDATE_DOSE if due is not None else Suggest.NOTHING,
        targets=(draft,) if due is not None else (),
        fix_frequency=fix_frequency,
    )
