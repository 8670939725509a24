"""Label 5 and 8.1: pregnancy stops the regimen (both hooks)."""

from __future__ import annotations

from cds_service.rules.codes import PREGNANCY_STATUS_CODES
from cds_service.rules.facts import Facts, MedicationOrder
from cds_service.rules.prefetch_keys import CONDITIONS, LABS
from cds_service.rules.settings import RuleSettings

from ..model import Action, Decision, DrugAdvice, Indicator, Suggest, evidence_line
from .rule import OrderCheck

RULE = OrderCheck(
    id="pregnancy",
    section="5 (Embryo-fetal toxicity), 8.1; lenalidomide label",
    reads="Observation 82810-3 = pregnant; active pregnancy Condition",
    label_text="Pregnancy: stop the regimen (ixazomib is embryo-fetal toxic; lenalidomide is "
    "contraindicated).",
    needs=(LABS, CONDITIONS),
    loinc=PREGNANCY_STATUS_CODES,
)


def decide(facts: Facts, settings: RuleSettings, drafts: list[MedicationOrder]) -> list[Decision]:
    """Discontinue the regimen; the drafts (none at the lab-result hook) are deleted."""
    if not facts.pregnancy:
        return []
    zone = str(settings.default_timezone)
    return [
        Decision(
            rule=RULE.id,
            indicator=Indicator.CRITICAL,
            summary="Pregnancy recorded: stop ixazomib, lenalidomide and dexamethasone regimen",
            ixazomib=DrugAdvice(Action.DISCONTINUE),
            lenalidomide=DrugAdvice(Action.DISCONTINUE),
            evidence=tuple(evidence_line(e, zone) for e in facts.pregnancy),
            notes=(
                "Ixazomib can cause fetal harm; lenalidomide is contraindicated in pregnancy. "
                "Contraception continues for 90 days after the last ixazomib dose.",
            ),
            suggest=Suggest.DELETE_DRAFT,
            targets=tuple(drafts),
        )
    ]
