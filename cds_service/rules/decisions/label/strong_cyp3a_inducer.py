"""Label 7.1: avoid strong CYP3A inducers with ixazomib."""

from __future__ import annotations

from cds_service.rules.facts import Facts
from cds_service.rules.prefetch_keys import MEDICATION_REQUESTS
from cds_service.rules.settings import RuleSettings

from ..model import Action, Decision, DrugAdvice, Indicator, order_line
from .rule import PatientCheck


def _check(facts: Facts, settings: RuleSettings) -> list[Decision]:
    if not facts.inducers:
        return []
    names = sorted({o.inducer or "" for o in facts.inducers})
    zone = str(settings.default_timezone)
    return [
        Decision(
            rule=RULE.id,
            indicator=Indicator.WARNING,
            summary=f"Strong CYP3A inducer ({', '.join(names)[:60]}): avoid with ixazomib",
            ixazomib=DrugAdvice(Action.REVIEW),
            evidence=tuple(order_line(o, zone) for o in facts.inducers),
            notes=(
                "Rifampin lowered ixazomib exposure by about 74%; consider an alternative "
                "to the inducer.",
            ),
        )
    ]


RULE = PatientCheck(
    id="strong-cyp3a-inducer",
    section="7.1 (Strong CYP3A inducers)",
    reads="active MedicationRequests",
    label_text="Avoid strong CYP3A inducers with ixazomib (rifampin lowered exposure by about "
    "74%): review.",
    needs=(MEDICATION_REQUESTS,),
    check=_check,
)
