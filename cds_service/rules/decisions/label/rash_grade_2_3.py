"""Label Table 3: rash Grade 2-3. A first occurrence withholds lenalidomide, a recurrence
both drugs; recoveries lower lenalidomide and ixazomib in turn."""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service.rules.codes import RASH_TERMS
from cds_service.rules.facts import Facts
from cds_service.rules.facts.clinical import Toxicity
from cds_service.rules.prefetch_keys import (
    ADVERSE_EVENTS,
    MEDICATION_REQUESTS,
    TOXICITY_GRADES,
    TOXICITY_TERM_OBSERVATIONS,
)

from .. import shared
from ..episodes import Step, alternating_drug, toxicity_episodes
from ..model import Action, Decision, DrugAdvice, Indicator, Suggest
from .rule import Now, Recovery, ToxicityRow


def _decide(now: Now) -> list[Decision]:
    window = now.settings.pain_score_max_age
    rash = shared.open_episodes(now.facts, Toxicity.RASH, 2, now.course, window)
    if not rash:
        return []
    episode = rash[-1]
    grade, number = episode.worst_grade, episode.number
    evidence = (
        *shared.episode_lines(episode, now.zone),
        f"occurrence {number} since ixazomib started",
    )
    stopped = shared.lenalidomide_stopped(now.facts)
    if number % 2 == 1:
        return [
            Decision(
                rule=RULE.id,
                indicator=Indicator.WARNING,
                summary=f"Rash Grade {grade}: "
                + (
                    "ixazomib continues; no lenalidomide order on record"
                    if stopped
                    else "withhold lenalidomide; ixazomib continues"
                ),
                ixazomib=DrugAdvice(Action.RESUME, now.due),
                lenalidomide=shared.lenalidomide_hold(stopped),
                evidence=evidence,
                notes=(
                    shared.LENALIDOMIDE_NOT_ON_RECORD
                    if stopped
                    else "When the rash is Grade 1 or less, resume lenalidomide one level "
                    "lower (lenalidomide label).",
                ),
            )
        ]
    return [
        Decision(
            rule=RULE.id,
            indicator=Indicator.CRITICAL,
            summary=f"Rash Grade {grade} again: withhold ixazomib"
            + ("" if stopped else " and lenalidomide"),
            ixazomib=DrugAdvice(Action.HOLD),
            lenalidomide=shared.lenalidomide_hold(stopped),
            evidence=evidence,
            notes=(
                f"When it is Grade 1 or less: ixazomib one level lower ({now.lower_text})"
                + ("." if stopped else ", lenalidomide at its most recent dose."),
                shared.LENALIDOMIDE_NOT_ON_RECORD if stopped else "",
            ),
            suggest=Suggest.DELETE_DRAFT,
            targets=tuple(now.drafts),
        )
    ]


def _recoveries(facts: Facts, started: datetime, pain_window: timedelta) -> list[Step]:
    steps = []
    for rash in toxicity_episodes(facts, Toxicity.RASH, 2, started, pain_window):
        if rash.ended is None or rash.worst_grade > 3:
            continue  # Grade 4 discontinues the regimen (rash-grade-4)
        why = f"rash Grade {rash.worst_grade} (occurrence {rash.number}) resolved"
        drug = alternating_drug(rash.number)
        steps.append(Step(rash.ended, rash.started, RULE.id, drug, why, rash.number))
    return steps


RULE = ToxicityRow(
    id="rash-grade-2-3",
    section="2.2 (Table 3)",
    reads="rash Grade 2 or 3 since ixazomib started",
    label_text="Rash Grade 2-3: first occurrence withhold lenalidomide until <= Grade 1, then "
    "reduce it one level; on recurrence withhold both, then reduce ixazomib one level and "
    "resume lenalidomide; then alternate.",
    needs=(ADVERSE_EVENTS, TOXICITY_GRADES, TOXICITY_TERM_OBSERVATIONS, MEDICATION_REQUESTS),
    terms=RASH_TERMS,
    holds_now=True,
    on_recovery=Recovery.ALTERNATING,
    step_name="rash Grade 2-3",
    toxicity=Toxicity.RASH,
    decide=_decide,
    recoveries=_recoveries,
)
