"""Label Table 3: peripheral neuropathy Grade 1 with pain or Grade 2 withholds ixazomib until
Grade 1 without pain or baseline; it then resumes at the most recent dose."""

from __future__ import annotations

from cds_service.rules.codes import NEUROPATHIC_PAIN_TERMS, NEUROPATHY_TERMS, PAIN_SCORE_CODES
from cds_service.rules.facts.clinical import Toxicity
from cds_service.rules.prefetch_keys import (
    ADVERSE_EVENTS,
    CONDITIONS,
    LABS,
    TOXICITY_GRADES,
    TOXICITY_TERM_OBSERVATIONS,
)

from .. import shared
from ..model import Decision, mg, toxicity_line
from .rule import Now, Recovery, ToxicityRow


def _decide(now: Now) -> list[Decision]:
    """Listed after neuropathy-grade-2-pain-or-3, which takes Grade 3 and pain first."""
    same_dose = f"Grade 1 without pain or baseline, resume at the most recent dose: {mg(now.due)}"
    found = shared.worst_open_neuropathy(now)
    if found is not None:
        episode, pain = found
        with_pain = bool(pain) or episode.with_pain
        evidence = (*shared.episode_lines(episode, now.zone), *(f"pain: {p}" for p in pain))
        pain_text = "with pain" if with_pain else "without recorded pain"
        return [
            shared.neuropathy_hold(
                RULE.id, episode.worst_grade, pain_text, evidence, same_dose, now.drafts
            )
        ]
    pain = shared.with_pain_now(now.facts, now.settings.pain_score_max_age, now.zone)
    current = shared.current_findings(now.facts, Toxicity.NEUROPATHY)
    if not (pain and current):
        return []
    worst = max(current, key=lambda f: f.grade or 0)
    evidence = (toxicity_line(worst, now.zone), *(f"pain: {p}" for p in pain))
    return [
        shared.neuropathy_hold(
            RULE.id, worst.grade or 1, "with pain", evidence, same_dose, now.drafts
        )
    ]


RULE = ToxicityRow(
    id="neuropathy-grade-1-pain-or-2",
    section="2.2 (Table 3)",
    reads="peripheral neuropathy grade; concurrent neuropathic pain or pain score > 0",
    label_text="Peripheral neuropathy Grade 1 with pain or Grade 2: withhold ixazomib until <= "
    "Grade 1 without pain, then resume at the most recent dose.",
    needs=(ADVERSE_EVENTS, TOXICITY_GRADES, TOXICITY_TERM_OBSERVATIONS, CONDITIONS, LABS),
    loinc=PAIN_SCORE_CODES,
    terms=NEUROPATHY_TERMS | NEUROPATHIC_PAIN_TERMS,
    holds_now=True,
    on_recovery=Recovery.SAME_DOSE,
    toxicity=Toxicity.NEUROPATHY,
    decide=_decide,
)
