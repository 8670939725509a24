"""What a decision is: the advice of one label row, with what it rests on, before rendering."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum, StrEnum

from cds_service.rules.facts import LabValue, MedicationOrder
from cds_service.rules.facts.clinical import Evidence, ToxicityFinding
from cds_service.rules.facts.labs import count_text
from cds_service.rules.facts.reading import shown
from cds_service.rules.units import plain


class Action(StrEnum):
    """What a card advises for one drug (service-contract.md); the value is the JSON text."""

    HOLD = "hold"
    RESUME = "resume"
    REDUCE = "reduce"
    START_REDUCED = "start-reduced"
    DISCONTINUE = "discontinue"
    CORRECT_DOSE = "correct-dose"
    REVIEW = "review"


class Indicator(StrEnum):
    """The CDS Hooks card indicator, most urgent first; the value is the JSON text."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class DrugAdvice:
    action: Action
    dose_mg: Decimal | None = None


class Suggest(Enum):
    NOTHING = "nothing"
    UPDATE_DOSE = "update the draft's dose"  # reduce, start-reduced, correct-dose
    DELETE_DRAFT = "delete the draft"  # hold, discontinue
    HOLD_ACTIVE = "put active orders on hold"  # lab-result hook


@dataclass(frozen=True)
class Decision:
    rule: str
    indicator: Indicator
    summary: str
    ixazomib: DrugAdvice
    lenalidomide: DrugAdvice | None = None
    evidence: tuple[str, ...] = ()  # Markdown list items: values, dates, calculations
    notes: tuple[str, ...] = ()  # what the advice means in practice, assumptions made
    suggest: Suggest = Suggest.NOTHING
    # UPDATE_DOSE: the one draft to change; DELETE_DRAFT: the drafts; HOLD_ACTIVE: the orders.
    targets: tuple[MedicationOrder, ...] = ()
    fix_frequency: bool = False  # the update also sets the labelled once-weekly timing

    @property
    def stops_ixazomib(self) -> bool:
        return self.ixazomib.action in {Action.HOLD, Action.DISCONTINUE}


def mg(dose: Decimal | None) -> str:
    return "unknown dose" if dose is None else f"{plain(dose)} mg"


def zone_note(zone_assumed: bool, zone_name: str) -> str:
    return f" (sent without a time zone; read as {zone_name})" if zone_assumed else ""


def lab_line(value: LabValue, zone_name: str, converted: str = "") -> str:
    extra = f" (= {converted})" if converted else ""
    return (
        f"{value.lab.value}: {value.sent}{extra}, {shown(value.at)}"
        f"{zone_note(value.zone_assumed, zone_name)} [{value.reference}]"
    )


def count_line(value: LabValue, zone_name: str) -> str:
    return lab_line(value, zone_name, f"{count_text(value.value)}/mm3")


def evidence_line(evidence: Evidence, zone_name: str) -> str:
    return (
        f"{evidence.text}, {shown(evidence.at)}{zone_note(evidence.zone_assumed, zone_name)} "
        f"[{evidence.reference}]"
    )


def toxicity_line(finding: ToxicityFinding, zone_name: str) -> str:
    grade = f"Grade {finding.grade}" if finding.grade is not None else "no CTCAE grade"
    severity = f", severity {finding.severity}" if finding.severity else ""
    state = "ongoing" if finding.ongoing else "resolved or superseded"
    return (
        f"{finding.term}: {grade}{severity}, {state}, {shown(finding.at)}"
        f"{zone_note(finding.zone_assumed, zone_name)} [{finding.reference}]"
    )


def order_line(order: MedicationOrder, zone_name: str) -> str:
    per_week = (
        f", {plain(order.doses_per_week)} dose(s) a week"
        if order.doses_per_week is not None
        else ""
    )
    return (
        f"{order.drug.value} order {order.reference} ({order.status}): {order.dose_sent}"
        f"{per_week}, from {shown(order.starts)}{zone_note(order.zone_assumed, zone_name)}"
    )
