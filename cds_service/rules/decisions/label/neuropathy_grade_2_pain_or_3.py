"""Label Table 3: peripheral neuropathy Grade 2 with pain or Grade 3 withholds ixazomib until
Grade 1 or baseline; it then resumes one dose level lower."""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service.rules.codes import NEUROPATHIC_PAIN_TERMS, NEUROPATHY_TERMS, PAIN_SCORE_CODES
from cds_service.rules.facts import Drug, Facts
from cds_service.rules.facts.clinical import Toxicity
from cds_service.rules.prefetch_keys import (
    ADVERSE_EVENTS,
    CONDITIONS,
    LABS,
    TOXICITY_GRADES,
    TOXICITY_TERM_OBSERVATIONS,
)

from .. import shared
from ..episodes import Step, toxicity_episodes
from ..model import Decision
from .rule import Now, Recovery, ToxicityRow


def _decide(now: Now) -> list[Decision]:
    found = shared.worst_open_neuropathy(now)
    if found is None:
        return []
    episode, pain = found
    with_pain = bool(pain) or episode.with_pain
    if not (episode.worst_grade == 3 or with_pain):
        return []  # Grade 2 without pain: neuropathy-grade-1-pain-or-2
    return [
        shared.neuropathy_hold(
            RULE.id,
            episode.worst_grade,
            "with pain" if with_pain else "without recorded pain",
            (*shared.episode_lines(episode, now.zone), *(f"pain: {p}" for p in pain)),
            f"back to Grade 1 or baseline, resume one level lower: {now.lower_text}",
            now.drafts,
        )
    ]


def _recoveries(facts: Facts, started: datetime, pain_window: timedelta) -> list[Step]:
    steps = []
    for episode in toxicity_episodes(facts, Toxicity.NEUROPATHY, 2, started, pain_window):
        if episode.ended is None or episode.worst_grade > 3:
            continue
        if episode.worst_grade == 3 or episode.with_pain:
            why = f"peripheral neuropathy Grade {episode.worst_grade}" + (
                " with pain" if episode.with_pain and episode.worst_grade == 2 else ""
            )
            steps.append(
                Step(
                    episode.ended,
                    episode.started,
                    RULE.id,
                    Drug.IXAZOMIB,
                    why + " resolved",
                    episode.number,
                )
            )
    return steps


RULE = ToxicityRow(
    id="neuropathy-grade-2-pain-or-3",
    section="2.2 (Table 3)",
    reads="peripheral neuropathy grade; concurrent neuropathic pain or pain score > 0",
    label_text="Peripheral neuropathy Grade 2 with pain or Grade 3: withhold ixazomib until <= "
    "Grade 1, then resume one dose level lower.",
    needs=(ADVERSE_EVENTS, TOXICITY_GRADES, TOXICITY_TERM_OBSERVATIONS, CONDITIONS, LABS),
    loinc=PAIN_SCORE_CODES,
    terms=NEUROPATHY_TERMS | NEUROPATHIC_PAIN_TERMS,
    holds_now=True,
    on_recovery=Recovery.IXAZOMIB_LOWER,
    step_name="peripheral neuropathy Grade 2 with pain or Grade 3",
    toxicity=Toxicity.NEUROPATHY,
    decide=_decide,
    recoveries=_recoveries,
)
