"""A toxicity recorded with a severity but no CTCAE grade cannot be matched to Table 3."""

from __future__ import annotations

from cds_service.rules.facts import Facts
from cds_service.rules.prefetch_keys import ADVERSE_EVENTS
from cds_service.rules.settings import RuleSettings

from ..model import Action, Decision, DrugAdvice, Indicator, toxicity_line
from .rule import PatientCheck


def _check(facts: Facts, settings: RuleSettings) -> list[Decision]:
    ungraded = [f for f in facts.toxicities if f.grade is None and f.ongoing]
    if not ungraded:
        return []
    zone = str(settings.default_timezone)
    return [
        Decision(
            rule=RULE.id,
            indicator=Indicator.WARNING,
            summary="Adverse event without a CTCAE grade: record the grade to check Table 3",
            ixazomib=DrugAdvice(Action.REVIEW),
            evidence=tuple(toxicity_line(f, zone) for f in ungraded),
            notes=(
                "Mild/moderate/severe cannot be mapped to a CTCAE grade with confidence "
                "(severe may be Grade 3 or 4, and the two call for different actions); no "
                "Table 3 rule was applied to these events.",
            ),
        )
    ]


RULE = PatientCheck(
    id="severity-without-grade",
    section="2.2 (Table 3; CTCAE v4.03)",
    reads="AdverseEvent with severity (mild/moderate/severe) but no CTCAE grade",
    label_text="A toxicity without a CTCAE grade cannot be matched to Table 3: record the grade.",
    needs=(ADVERSE_EVENTS,),
    check=_check,
)
