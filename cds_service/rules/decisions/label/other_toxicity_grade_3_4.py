"""Label Table 3: other non-hematologic toxicity Grade 3-4 withholds ixazomib until Grade 1 or
baseline; if attributable to ixazomib it resumes one dose level lower. A Grade 2 one keeps a
new cycle waiting (label 2.2)."""

from __future__ import annotations

from datetime import datetime, timedelta

from cds_service.rules.codes import IXAZOMIB_LEVELS
from cds_service.rules.facts import Drug, Facts
from cds_service.rules.facts.clinical import Toxicity
from cds_service.rules.prefetch_keys import ADVERSE_EVENTS, MEDICATION_REQUESTS, TOXICITY_GRADES

from .. import shared
from ..episodes import Step, next_lower, toxicity_episodes
from ..model import Action, Decision, DrugAdvice, Indicator, Suggest, mg, toxicity_line
from .rule import Now, Recovery, ToxicityRow

_ATTRIBUTION = {True: "attributed to ixazomib", False: "not attributed to ixazomib"}


def _decide(now: Now) -> list[Decision]:
    decisions = []
    window = now.settings.pain_score_max_age
    for episode in shared.open_episodes(now.facts, Toxicity.OTHER, 3, now.course, window):
        attributed = _ATTRIBUTION.get(
            episode.attributed_to_ixazomib,  # type: ignore[arg-type]
            "attribution to ixazomib not recorded",
        )
        decisions.append(
            Decision(
                rule=RULE.id,
                indicator=Indicator.CRITICAL,
                summary=f"Grade {episode.worst_grade} {episode.term[:60]}: withhold ixazomib",
                ixazomib=DrugAdvice(Action.HOLD),
                evidence=(*shared.episode_lines(episode, now.zone), attributed),
                notes=(
                    f"When it is Grade 1 or baseline: if attributable to ixazomib resume one "
                    f"level lower ({now.lower_text}), otherwise at the most recent dose "
                    f"({mg(now.due)}).",
                ),
                suggest=Suggest.DELETE_DRAFT,
                targets=tuple(now.drafts),
            )
        )
    return decisions


def _unattributed_recoveries(now: Now) -> list[Decision]:
    """A toxicity that resolved with no attribution recorded: the dose on resumption depends
    on whether ixazomib caused it, which only the prescriber can say."""
    course = now.course
    if course.started is None or course.ixazomib_level is None:
        return []
    last = course.last_ixazomib_order
    after = last.starts if last is not None else None
    due = course.ixazomib_level
    lower = next_lower(IXAZOMIB_LEVELS, due)
    decisions = []
    for episode in toxicity_episodes(
        now.facts, Toxicity.OTHER, 3, course.started, now.settings.pain_score_max_age
    ):
        if episode.ended is None or episode.attributed_to_ixazomib is not None:
            continue
        if after is not None and episode.ended <= after:
            continue  # a later ixazomib order already decided
        decisions.append(
            Decision(
                rule=RULE.id,
                indicator=Indicator.WARNING,
                summary=f"Grade {episode.worst_grade} {episode.term[:50]} resolved: "
                "attributable to ixazomib? It decides the dose",
                ixazomib=DrugAdvice(Action.REVIEW),
                evidence=(
                    *(toxicity_line(f, now.zone) for f in episode.findings),
                    "attribution to ixazomib not recorded",
                ),
                notes=(
                    "If attributable to ixazomib, resume one level lower ("
                    + (mg(lower) if lower is not None else "none below 2.3 mg: discontinue")
                    + f"); otherwise at the most recent dose ({mg(due)}).",
                ),
            )
        )
    return decisions


def _recoveries(facts: Facts, started: datetime, pain_window: timedelta) -> list[Step]:
    steps = []
    for other in toxicity_episodes(facts, Toxicity.OTHER, 3, started, pain_window):
        if other.ended is None or other.worst_grade > 4 or other.attributed_to_ixazomib is not True:
            continue
        why = f"{other.term} Grade {other.worst_grade}, attributed to ixazomib"
        steps.append(
            Step(
                other.ended, other.started, RULE.id, Drug.IXAZOMIB, why + ", resolved", other.number
            )
        )
    return steps


RULE = ToxicityRow(
    id="other-toxicity-grade-3-4",
    section="2.2 (Table 3)",
    reads="other non-hematologic adverse events Grade 3-4; attribution to ixazomib",
    label_text="Other non-hematologic toxicity Grade 3-4: withhold ixazomib until <= Grade 1; "
    "if attributable to ixazomib, resume one dose level lower. Resolved with no attribution "
    "recorded: review (the attribution decides the dose).",
    needs=(ADVERSE_EVENTS, TOXICITY_GRADES, MEDICATION_REQUESTS),
    holds_now=True,
    on_recovery=Recovery.IXAZOMIB_LOWER_IF_ATTRIBUTED,
    step_name="other Grade 3-4 toxicity attributed to ixazomib",
    toxicity=Toxicity.OTHER,
    decide=_decide,
    recoveries=_recoveries,
    after_recovery=_unattributed_recoveries,
    new_cycle_gate=True,
)
