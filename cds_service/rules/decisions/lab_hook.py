"""org.ixazomib-cds.lab-result: a new count below threshold, or a recovery from an episode."""

from __future__ import annotations

from datetime import timedelta

from cds_service.rules.facts import Drug, Facts, LabValue
from cds_service.rules.settings import RuleSettings

from . import shared
from .episodes import count_episodes
from .history import DoseCourse, dose_course
from .label import data_unavailable, pregnancy, registry
from .label.rule import CountRow
from .model import (
    Action,
    Decision,
    DrugAdvice,
    Indicator,
    Suggest,
    count_line,
    mg,
)

# A patient with no ixazomib order active or on hold, and none begun within two cycles, is
# off ixazomib: a low count then is not the label's business.
OFF_TREATMENT_AFTER = timedelta(days=56)


def decide_lab_result(facts: Facts, settings: RuleSettings) -> list[Decision]:
    course = dose_course(facts, settings.pain_score_max_age)
    if course.started is None and facts.unreadable_history:
        # Regimen orders that cannot be read: whether the patient is on ixazomib is unknown,
        # and silence would pass a low count as if they were not.
        # An active ixazomib order with no start date is being taken all the same: a low new
        # count is withheld (Table 3 holds at any occurrence; with no course, only the hold).
        undated = any(o.drug is Drug.IXAZOMIB and o.status == "active" for o in facts.undated)
        holds = _new_count_advice(facts, settings, course) if undated else []
        return holds + shared.data_problems(facts)
    if course.started is None or not _on_treatment(facts):
        return []
    decisions = _new_count_advice(facts, settings, course)
    pregnancy_now = [e for e in facts.pregnancy if e.reference in facts.new_references]
    if pregnancy_now:
        decisions += pregnancy.decide(facts, settings, [])
    # The new results, and the regimen orders the dose course was read from (one with an
    # element left out as unreadable is named: the course may rest on what was left out).
    named = facts.new_references | {order.reference for order in facts.history}
    decisions += shared.data_problems(facts, only=named)
    if decisions and (facts.unavailable or facts.left_out):
        decisions += [d for d in shared.data_problems(facts) if d.rule == data_unavailable.RULE.id]
    return shared.recognised_by_text(decisions, facts.active_orders)


def _new_count_advice(facts: Facts, settings: RuleSettings, course: DoseCourse) -> list[Decision]:
    """Table 3 at the newest new count of each count row's lab."""
    decisions: list[Decision] = []
    for row in registry.COUNT_ROWS:
        new = [v for v in facts.new_labs if v.lab is row.lab]
        if new:
            decisions += _count_advice(facts, settings, course, row, max(new, key=lambda v: v.at))
    return decisions


def _on_treatment(facts: Facts) -> bool:
    orders = facts.ixazomib_history()
    if any(o.status in {"active", "on-hold"} for o in orders):
        return True
    latest = max((o.starts for o in orders if o.starts is not None), default=None)
    return latest is not None and facts.now - latest <= OFF_TREATMENT_AFTER


def _count_advice(
    facts: Facts, settings: RuleSettings, course: DoseCourse, row: CountRow, newest: LabValue
) -> list[Decision]:
    """Table 3 at a new count of ``row``'s lab: hold when it is low, and when it ends an
    episode, the step that recovery owes. With no course (``course.started`` None) there are
    no episodes to end: only a hold, of an unknown occurrence."""
    zone = shared.zone_name(settings)
    lab, threshold = row.lab, row.hold_below
    started = course.started or newest.at
    episodes = count_episodes(facts.labs[lab], threshold, started)
    orders = tuple(facts.active_orders)
    if any(v.at > newest.at for v in facts.labs[lab]):
        return []  # filed late: a later result is already on record and had its own call
    if newest.value < threshold:
        # No course (an undated ixazomib order): the occurrence is unknown, not guessed.
        number = (
            None
            if course.started is None
            else next((e.number for e in episodes if newest in e.lows), len(episodes) or 1)
        )
        stopped = shared.lenalidomide_stopped(facts)
        return [
            shared.hold_for_low_count(
                row, newest, number, zone, Suggest.HOLD_ACTIVE, orders, stopped
            )
        ]
    episode = next((e for e in episodes if e.recovery is newest), None)
    if episode is None:
        return []
    step = next(
        (s for s in course.steps if s.rule == row.id and s.episode_number == episode.number),
        None,
    )
    if step is None:
        return []
    lows = ", ".join(count_line(v, zone) for v in episode.lows[-3:])
    evidence = (
        f"lowest in the episode: {lows}",
        count_line(newest, zone),
        f"occurrence {episode.number} since ixazomib started",
    )
    if step.drug is Drug.LENALIDOMIDE and shared.lenalidomide_stopped(facts):
        return [
            Decision(
                rule=row.id,
                indicator=Indicator.INFO,
                summary=f"{lab.value} recovered: resume ixazomib {mg(course.ixazomib_level)}; "
                "no lenalidomide order on record",
                ixazomib=DrugAdvice(Action.RESUME, course.ixazomib_level),
                evidence=evidence,
                notes=(
                    f"Occurrence {episode.number}: ixazomib continues at its most recent dose "
                    "(this recovery's reduction is lenalidomide's).",
                    shared.LENALIDOMIDE_NOT_ON_RECORD,
                ),
            )
        ]
    if step.drug is Drug.LENALIDOMIDE:
        if step.to_mg is None and step.from_mg is not None:
            # Below lenalidomide's lowest level (2.5 mg): its own label stops it.
            lenalidomide = DrugAdvice(Action.DISCONTINUE)
            lenalidomide_text = "no lenalidomide dose below 2.5 mg: discontinue lenalidomide"
        else:
            lenalidomide = DrugAdvice(Action.REDUCE, step.to_mg)
            lenalidomide_text = f"lenalidomide one level lower ({mg(step.to_mg)})"
        return [
            Decision(
                rule=row.id,
                indicator=Indicator.INFO
                if lenalidomide.action == Action.REDUCE
                else Indicator.WARNING,
                summary=f"{lab.value} recovered: resume ixazomib {mg(course.ixazomib_level)}; "
                + lenalidomide_text,
                ixazomib=DrugAdvice(Action.RESUME, course.ixazomib_level),
                lenalidomide=lenalidomide,
                evidence=evidence,
                notes=(
                    f"Occurrence {episode.number}: {lenalidomide_text}; ixazomib continues at "
                    "its most recent dose.",
                ),
            )
        ]
    if step.to_mg is None:
        return [
            Decision(
                rule=row.id,
                indicator=Indicator.CRITICAL,
                summary=f"{lab.value} recovered, but no ixazomib dose below 2.3 mg: discontinue it",
                ixazomib=DrugAdvice(Action.DISCONTINUE),
                lenalidomide=DrugAdvice(Action.RESUME, course.lenalidomide_level),
                evidence=evidence,
            )
        ]
    return [
        Decision(
            rule=row.id,
            indicator=Indicator.WARNING,
            summary=f"{lab.value} recovered: resume ixazomib one level lower at {mg(step.to_mg)}",
            ixazomib=DrugAdvice(Action.REDUCE, step.to_mg),
            lenalidomide=DrugAdvice(Action.RESUME, course.lenalidomide_level),
            evidence=evidence,
            notes=(
                f"Occurrence {episode.number}: ixazomib goes from {mg(step.from_mg)} to "
                f"{mg(step.to_mg)}; lenalidomide resumes at its most recent dose.",
            ),
        )
    ]
