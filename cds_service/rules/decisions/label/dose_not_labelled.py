"""Label 2.1, 2.2 (Table 2) and 3: a dose must be 4, 3 or 2.3 mg, one capsule of its own
strength, three weekly doses then a week off."""

from __future__ import annotations

from decimal import Decimal

from cds_service.rules.codes import IXAZOMIB_LEVELS
from cds_service.rules.facts import MedicationOrder
from cds_service.rules.units import plain

from ..model import Action, Decision, DrugAdvice, Indicator, Suggest, mg, order_line
from .overdose import MAX_DOSES_PER_WEEK
from .rule import OrderCheck

RULE = OrderCheck(
    id="dose-not-labelled",
    section="2.1, 2.2 (Table 2), 3 (capsule strengths)",
    reads="draft ixazomib order: dose (mg), capsule strength of the product code, dose count",
    label_text="A dose that is not 4, 3 or 2.3 mg, or one ordered as a capsule of another "
    "strength, cannot be given as one capsule: correct it to the dose due. More than 3 weekly "
    "doses in a row skips the week off (days 1, 8, 15 of 28): correct the schedule.",
)

DOSES_PER_CYCLE = 3  # days 1, 8 and 15 of a 28-day cycle


def decide(draft: MedicationOrder, due: Decimal | None, zone: str) -> Decision | None:
    """A readable dose that is not labelled, corrected to the dose ``due``; None when it is."""
    dose = draft.dose_mg
    if dose is None:
        return None
    strength = draft.strength_mg
    per_week = draft.doses_per_week
    weeks_in_a_row = per_week == MAX_DOSES_PER_WEEK and (draft.dose_count or 0) > DOSES_PER_CYCLE
    if dose not in IXAZOMIB_LEVELS:
        summary = f"Ixazomib {plain(dose)} mg is not a labelled dose (4, 3 or 2.3 mg)"
    elif strength is not None and dose != strength:
        # Every labelled dose is one capsule of its own strength (2.3, 3 or 4 mg).
        summary = f"Ixazomib {plain(dose)} mg ordered as the {plain(strength)} mg capsule"
    elif weeks_in_a_row:
        summary = (
            f"Ixazomib weekly for {draft.dose_count} doses in a row: the label gives 3 "
            "(days 1, 8, 15), then a week off"
        )
    else:
        return None
    return Decision(
        rule=RULE.id,
        indicator=Indicator.WARNING,
        summary=summary,
        ixazomib=DrugAdvice(Action.CORRECT_DOSE, due),
        evidence=(order_line(draft, zone),),
        notes=(f"The dose due is {mg(due)}: one capsule of that strength, once weekly.",),
        suggest=Suggest.UPDATE_DOSE if due is not None else Suggest.NOTHING,
        targets=(draft,) if due is not None else (),
        fix_frequency=weeks_in_a_row,
    )
