"""Label Table 3: peripheral neuropathy Grade 4 discontinues the regimen, also when it has
since improved."""

from __future__ import annotations

from cds_service.rules.codes import NEUROPATHY_TERMS
from cds_service.rules.facts.clinical import Toxicity
from cds_service.rules.prefetch_keys import (
    ADVERSE_EVENTS,
    TOXICITY_GRADES,
    TOXICITY_TERM_OBSERVATIONS,
)

from .. import shared
from ..model import Decision, toxicity_line
from .rule import Now, Recovery, ToxicityRow


def _decide(now: Now) -> list[Decision]:
    finding = shared.grade_4_since_start(now.facts, Toxicity.NEUROPATHY, now.course)
    if finding is None:
        return []
    evidence = (toxicity_line(finding, now.zone),)
    return [shared.discontinue_regimen(RULE.id, finding, evidence, now.drafts)]


RULE = ToxicityRow(
    id="neuropathy-grade-4",
    section="2.2 (Table 3)",
    reads="peripheral neuropathy Grade 4, now or at any time since ixazomib started",
    label_text="Peripheral neuropathy Grade 4: discontinue the regimen (also when it has since "
    "improved).",
    needs=(ADVERSE_EVENTS, TOXICITY_GRADES, TOXICITY_TERM_OBSERVATIONS),
    terms=NEUROPATHY_TERMS,
    holds_now=True,
    on_recovery=Recovery.NONE,
    toxicity=Toxicity.NEUROPATHY,
    decide=_decide,
)
