"""Documented hypersensitivity to ixazomib (no US contraindication; EU SmPC 4.3)."""

from __future__ import annotations

from cds_service.rules.facts import Facts
from cds_service.rules.prefetch_keys import ALLERGIES
from cds_service.rules.settings import RuleSettings

from ..model import Action, Decision, DrugAdvice, Indicator, evidence_line
from .rule import PatientCheck


def _check(facts: Facts, settings: RuleSettings) -> list[Decision]:
    if not facts.hypersensitivity:
        return []
    zone = str(settings.default_timezone)
    return [
        Decision(
            rule=RULE.id,
            indicator=Indicator.WARNING,
            summary="Documented hypersensitivity to ixazomib: review before ordering",
            ixazomib=DrugAdvice(Action.REVIEW),
            evidence=tuple(evidence_line(e, zone) for e in facts.hypersensitivity),
            notes=(
                "The US label lists no contraindication; the EU SmPC contraindicates "
                "ixazomib in hypersensitivity to it or its excipients.",
            ),
        )
    ]


RULE = PatientCheck(
    id="hypersensitivity",
    section="4 (no US contraindication; EU SmPC 4.3)",
    reads="AllergyIntolerance to ixazomib",
    label_text="Documented hypersensitivity to ixazomib: review before giving it.",
    needs=(ALLERGIES,),
    check=_check,
)
