"""Label 2.2 (Table 2): the draft's dose is the dose level due. Levels only go down (4 -> 3 ->
2.3 mg); the dose course (``history.dose_course``) says which level is due."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from cds_service.rules.facts import Drug, Facts, MedicationOrder
from cds_service.rules.prefetch_keys import MEDICATION_REQUESTS

from ..episodes import step_ordered
from ..model import Action, Decision, DrugAdvice, Indicator, Suggest, mg, order_line
from .rule import OrderCheck

if TYPE_CHECKING:
    from ..history import DoseCourse

RULE = OrderCheck(
    id="dose-level-due",
    section="2.2 (Table 2)",
    reads="draft ixazomib dose; ixazomib order history; reductions owed by earlier toxicities",
    label_text="The draft dose differs from the dose level the history makes due (4 -> 3 -> "
    "2.3 mg; levels only go down): reduce or correct it to that level.",
    needs=(MEDICATION_REQUESTS,),
)


def at_start(
    draft: MedicationOrder, due: Decimal, zone: str, decisions: list[Decision]
) -> list[Decision]:
    """A first order at another labelled dose than the starting dose due (unless another
    decision already updates this draft's dose)."""
    if any(d.targets == (draft,) and d.suggest is Suggest.UPDATE_DOSE for d in decisions):
        return []
    return [
        Decision(
            rule=RULE.id,
            indicator=Indicator.INFO,
            summary=f"Starting dose due is {mg(due)}; the order says {mg(draft.dose_mg)}",
            ixazomib=DrugAdvice(Action.CORRECT_DOSE, due),
            evidence=(order_line(draft, zone),),
            notes=(
                "The label starts ixazomib at 4 mg, or 3 mg in moderate/severe hepatic or "
                "severe renal impairment.",
            ),
            suggest=Suggest.UPDATE_DOSE,
            targets=(draft,),
        )
    ]


def in_course(
    draft: MedicationOrder,
    course: DoseCourse,
    history: tuple[str, ...],
    zone: str,
    facts: Facts,
) -> list[Decision]:
    """A draft dose that differs from the level the course makes due: ``reduce`` when the
    reduction is owed now and was never ordered, otherwise ``correct-dose``."""
    due = course.ixazomib_level
    if due is None or draft.dose_mg is None or draft.dose_mg == due:
        return []
    owed_now = draft.dose_mg > due and _reduction_never_ordered(course, facts)
    return [
        Decision(
            rule=RULE.id,
            indicator=Indicator.WARNING if draft.dose_mg > due else Indicator.INFO,
            summary=f"Ixazomib dose level due is {mg(due)}; the order says {mg(draft.dose_mg)}",
            ixazomib=DrugAdvice(Action.REDUCE if owed_now else Action.CORRECT_DOSE, due),
            evidence=(*history, order_line(draft, zone)),
            notes=(
                "Dose levels only go down (4 -> 3 -> 2.3 mg); a reduction the label "
                "required is kept.",
            ),
            suggest=Suggest.UPDATE_DOSE,
            targets=(draft,),
        )
    ]


def _reduction_never_ordered(course: DoseCourse, facts: Facts) -> bool:
    """The last required ixazomib reduction has not been followed by an order at that level."""
    step = next((s for s in reversed(course.steps) if s.drug is Drug.IXAZOMIB), None)
    if step is None or step.to_mg is None:
        return False
    return not step_ordered(step, facts.ixazomib_history())
