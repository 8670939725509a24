"""order-sign / order-select: judge the draft ixazomib orders against the label and history.

The rules come from the registry (``label.registry``): each Table 3 row decides what holds
now and what its recoveries owe; the starting-dose rules and the record's checks are iterated
the same way. What stays here is the order in which they apply and what ties them together:
a hold or discontinue suppresses dose changes of the same draft.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from cds_service.rules.codes import IXAZOMIB_LEVELS
from cds_service.rules.facts import Drug, Facts, Lab, LabValue, MedicationOrder
from cds_service.rules.facts.reading import shown
from cds_service.rules.prefetch_keys import MEDICATIONS
from cds_service.rules.settings import RuleSettings

from . import shared
from .episodes import Step, count_episodes
from .history import DoseCourse, dose_course
from .label import (
    cbc_missing,
    data_unavailable,
    data_uninterpretable,
    dose_level_due,
    dose_not_labelled,
    new_cycle_gate,
    overdose,
    pregnancy,
    registry,
)
from .label.rule import CountRow, Now, Recovery, Table3Row
from .model import (
    Action,
    Decision,
    DrugAdvice,
    Indicator,
    Suggest,
    mg,
    order_line,
)

NEW_CYCLE_AFTER = timedelta(days=21)  # days 22-28 are the week off: what follows is a new cycle


def decide_order(facts: Facts, settings: RuleSettings) -> list[Decision]:
    drafts = facts.drafts
    course = dose_course(facts, settings.pain_score_max_age)
    now = Now(facts, settings, course, drafts)
    zone = now.zone
    due = now.due
    history = _course_lines(course, facts, zone)

    decisions: list[Decision] = []
    decisions += pregnancy.decide(facts, settings, drafts)
    decisions += _discontinued_by_history(
        course, drafts, history, shared.lenalidomide_stopped(facts)
    )
    cycle = _cycle_start(course, drafts, facts.now)
    for count_row in registry.COUNT_ROWS:
        decisions += _hold_for_count(now, count_row)
    decisions += new_cycle_gate.counts(facts, settings, registry.COUNT_ROWS, drafts, cycle)
    decisions += cbc_missing.decide(facts, settings, registry.COUNT_ROWS)
    decisions += toxicity_holds(now)
    if cycle[0] and course.started is not None:  # before cycle 1 what is there is baseline
        decisions += new_cycle_gate.toxicities(now, registry.TOXICITY_ROWS, cycle[1])
    for row in registry.TOXICITY_ROWS:
        if row.after_recovery is not None:
            decisions += row.after_recovery(now)
    stopped = any(d.stops_ixazomib for d in decisions)

    start_due = due
    # Orders whose medication could not be identified may be earlier ixazomib: then "no
    # earlier ixazomib" is not known, and the starting dose cannot be judged.
    history_unknown = course.started is None and (
        MEDICATIONS in facts.unavailable or bool(facts.unreadable_history)
    )
    if history_unknown:
        decisions.append(_history_unknown(facts))
    elif course.started is None:
        start_cards, start_due = _starting_dose(facts, settings, drafts, stopped)
        decisions += start_cards
    for draft in drafts:
        error = _order_error(draft, start_due, zone)
        if error is not None:
            decisions.append(error)
        elif not stopped and course.started is not None:
            decisions += _dose_due(draft, course, history, zone, facts)
        elif (
            not (stopped or history_unknown)
            and start_due is not None
            and draft.dose_mg != start_due
        ):
            decisions += dose_level_due.at_start(draft, start_due, zone, decisions)

    for check in registry.PATIENT_CHECKS:
        decisions += check.check(facts, settings)
    decisions += shared.data_problems(facts)
    lenalidomide = _lenalidomide_drafts(facts)
    decisions = [_with_lenalidomide_drafts(d, lenalidomide) for d in decisions]
    return shared.recognised_by_text(decisions, [*drafts, *lenalidomide])


def toxicity_holds(now: Now) -> list[Decision]:
    """Table 3 toxicity rows now: for each toxicity the first row that decides something
    (rows of one toxicity are listed worst first, so Grade 4 is asked before Grade 2-3)."""
    decisions: list[Decision] = []
    decided: set[object] = set()
    for row in registry.TOXICITY_ROWS:
        if row.toxicity not in decided and (found := row.decide(now)):
            decisions += found
            decided.add(row.toxicity)
    return decisions


def _row(step: Step) -> Table3Row:
    """The Table 3 row whose recovery owed a step."""
    row = registry.RULES_BY_ID[step.rule]
    assert isinstance(row, Table3Row), step.rule
    return row


def _step_name(step: Step) -> str:
    return _row(step).step_name


def _lenalidomide_drafts(facts: Facts) -> tuple[MedicationOrder, ...]:
    return tuple(o for o in facts.other_drafts if o.drug is Drug.LENALIDOMIDE)


def _with_lenalidomide_drafts(
    decision: Decision, lenalidomide: tuple[MedicationOrder, ...]
) -> Decision:
    """Advice that withholds or stops lenalidomide also removes a lenalidomide draft signed
    with the ixazomib order: Table 3 withholds both drugs, not only the one being checked."""
    if not lenalidomide or decision.lenalidomide is None:
        return decision
    if decision.lenalidomide.action not in {Action.HOLD, Action.DISCONTINUE}:
        return decision
    if decision.suggest is Suggest.DELETE_DRAFT:
        return replace(decision, targets=(*decision.targets, *lenalidomide))
    if decision.suggest is Suggest.NOTHING:
        return replace(decision, suggest=Suggest.DELETE_DRAFT, targets=lenalidomide)
    return decision


def _history_unknown(facts: Facts) -> Decision:
    evidence = [f"{why}: {reference}" for reference, why in facts.unreadable_history.items()]
    if MEDICATIONS in facts.unavailable:
        evidence.append(f"medication references: {facts.unavailable[MEDICATIONS]}")
    return Decision(
        rule=data_unavailable.RULE.id,
        indicator=Indicator.WARNING,
        summary="Earlier orders could not be identified: starting dose not checked",
        ixazomib=DrugAdvice(Action.REVIEW),
        evidence=tuple(evidence),
        notes=(
            "No readable earlier ixazomib order was found, but some earlier orders could not "
            "be read or name a Medication that could not be: whether ixazomib was given before, "
            "and so whether the hepatic and renal starting-dose rules apply, is unknown.",
        ),
    )


def _course_lines(course: DoseCourse, facts: Facts, zone: str) -> tuple[str, ...]:
    if course.started is None:
        return ("no earlier ixazomib order: this order starts ixazomib",)
    lines = [order_line(o, zone) for o in facts.history[-4:]]
    lines += [
        f"{s.why}: {s.drug.value} {mg(s.from_mg)} -> "
        f"{mg(s.to_mg) if s.to_mg is not None else 'discontinue'} ({_step_name(s)})"
        for s in course.steps
    ]
    lines.append(
        f"ixazomib started at {mg(course.start_dose)}; dose level due now: "
        f"{mg(course.ixazomib_level) if course.ixazomib_level else 'none (discontinue)'}"
    )
    return tuple(lines)


def _discontinued_by_history(
    course: DoseCourse,
    drafts: list[MedicationOrder],
    history: tuple[str, ...],
    lenalidomide_was_stopped: bool,
) -> list[Decision]:
    if not course.ixazomib_discontinued:
        return []
    last = next(s for s in reversed(course.steps) if s.to_mg is None and s.drug is Drug.IXAZOMIB)
    return [
        Decision(
            rule=last.rule,
            indicator=Indicator.CRITICAL,
            summary="No ixazomib dose below 2.3 mg: discontinue ixazomib",
            ixazomib=DrugAdvice(Action.DISCONTINUE),
            lenalidomide=_lenalidomide_after(last, course, lenalidomide_was_stopped),
            evidence=history,
            notes=(f"{last.why} owed a reduction below 2.3 mg, the lowest dose level.",),
            suggest=Suggest.DELETE_DRAFT,
            targets=tuple(drafts),
        )
    ]


def _lenalidomide_after(step: Step, course: DoseCourse, stopped: bool) -> DrugAdvice | None:
    """``stopped``: lenalidomide has been stopped (``shared.lenalidomide_stopped``), so no
    reduction of it is advised."""
    if _row(step).on_recovery is not Recovery.ALTERNATING:
        return None
    if step.drug is Drug.LENALIDOMIDE:
        if step.to_mg is None and step.from_mg is not None:
            return DrugAdvice(Action.DISCONTINUE)
        return None if stopped else DrugAdvice(Action.REDUCE, step.to_mg)
    return DrugAdvice(Action.RESUME, course.lenalidomide_level)


def _latest(facts: Facts, lab: Lab) -> LabValue | None:
    return facts.labs[lab][-1] if facts.labs[lab] else None


def _cycle_start(
    course: DoseCourse, drafts: list[MedicationOrder], now: datetime
) -> tuple[bool, str]:
    """(whether the drafts begin a new cycle, why). A draft within three weeks of the last
    ixazomib order's start resumes that cycle (days 8 or 15 after a hold): the new-cycle
    criteria do not apply to it, only the hold thresholds of Table 3."""
    last = course.last_ixazomib_order
    if last is None or last.starts is None:
        return True, "no earlier ixazomib order: this order begins cycle 1"
    since = min((d.starts or now for d in drafts), default=now) - last.starts
    new_cycle = since >= NEW_CYCLE_AFTER
    reading = "the start of a new cycle" if new_cycle else "resuming the current cycle"
    return new_cycle, (
        f"this order begins {since.days} days after the last ixazomib order began "
        f"({shown(last.starts)}): read as {reading}"
    )


def _hold_for_count(now: Now, row: CountRow) -> list[Decision]:
    """Table 3: the latest count below the row's threshold holds (also when it is stale)."""
    facts = now.facts
    latest = _latest(facts, row.lab)
    if latest is None or latest.value >= row.hold_below:
        return []
    since = now.course.started or latest.at
    episodes = count_episodes(facts.labs[row.lab], row.hold_below, since)
    number = episodes[-1].number if episodes else 1
    return [
        shared.hold_for_low_count(
            row,
            latest,
            number,
            now.zone,
            Suggest.DELETE_DRAFT,
            tuple(now.drafts),
            shared.lenalidomide_stopped(facts),
        )
    ]


def _starting_dose(
    facts: Facts, settings: RuleSettings, drafts: list[MedicationOrder], stopped: bool
) -> tuple[list[Decision], Decimal]:
    """Hepatic and renal starting dose, only when ixazomib is being started."""
    decisions: list[Decision] = []
    due = IXAZOMIB_LEVELS[0]
    needs_check = any(d.dose_mg is None or d.dose_mg > IXAZOMIB_LEVELS[1] for d in drafts)
    for rule in registry.START_DOSE_RULES:
        assessment = rule.assess(facts, settings)
        if assessment.impaired:
            due = IXAZOMIB_LEVELS[1]
            target = next((d for d in drafts if d.dose_mg is None or d.dose_mg > due), None)
            if target is None:
                continue  # the draft already starts at 3 mg or less
            decisions.append(
                Decision(
                    rule=rule.id,
                    indicator=Indicator.WARNING,
                    summary=f"Starting ixazomib with {rule.impairment}: start at 3 mg",
                    ixazomib=DrugAdvice(Action.START_REDUCED, due),
                    evidence=(*assessment.evidence, order_line(target, shared.zone_name(settings))),
                    notes=tuple(n for n in (assessment.assumption,) if n),
                    suggest=Suggest.NOTHING if stopped else Suggest.UPDATE_DOSE,
                    targets=() if stopped else (target,),
                )
            )
        elif assessment.impaired is None and needs_check:
            decisions.append(
                Decision(
                    rule=rule.id,
                    indicator=Indicator.WARNING,
                    summary=f"Starting dose: {rule.organ} function unknown; 3 mg may be due",
                    ixazomib=DrugAdvice(Action.REVIEW),
                    evidence=assessment.evidence,
                    notes=(
                        f"Missing: {assessment.missing}. The starting dose is 3 mg in "
                        + rule.criterion,
                    ),
                )
            )
    return decisions, due


def _order_error(draft: MedicationOrder, due: Decimal | None, zone: str) -> Decision | None:
    """Overdose, a dose that cannot be read, or a dose that is not labelled."""
    if (found := overdose.decide(draft, due, zone)) is not None:
        return found
    if draft.dose_mg is None:
        return Decision(
            rule=data_uninterpretable.RULE.id,
            indicator=Indicator.WARNING,
            summary="The ixazomib order's dose cannot be read: review it",
            ixazomib=DrugAdvice(Action.REVIEW),
            evidence=(order_line(draft, zone), draft.dose_problem or "no dose"),
        )
    return dose_not_labelled.decide(draft, due, zone)


def _dose_due(
    draft: MedicationOrder,
    course: DoseCourse,
    history: tuple[str, ...],
    zone: str,
    facts: Facts,
) -> list[Decision]:
    """Recovery advice not yet acted on, under the rule of the row that owed it, and a draft
    dose that differs from the level due (``dose-level-due``)."""
    due = course.ixazomib_level
    if due is None:
        return []  # discontinued: reported by _discontinued_by_history
    decisions: list[Decision] = []
    latest_per_rule: dict[str, Step] = {}
    for step in course.pending_steps([*facts.history, *_lenalidomide_drafts(facts)]):
        latest_per_rule[step.rule] = step
    updated = False
    for step in sorted(latest_per_rule.values(), key=lambda s: s.at):
        lowers_ixazomib = step.drug is Drug.IXAZOMIB
        too_high = draft.dose_mg is not None and draft.dose_mg > due
        if lowers_ixazomib and not too_high:
            continue  # the draft already makes the reduction (a lower one: dose-level-due)
        decisions.append(
            Decision(
                rule=step.rule,
                indicator=Indicator.WARNING if lowers_ixazomib else Indicator.INFO,
                summary=(
                    f"After {_step_name(step)}: ixazomib {mg(due)}"
                    + (" (one level lower)" if lowers_ixazomib else " (most recent dose)")
                )[:139],
                ixazomib=DrugAdvice(Action.REDUCE if lowers_ixazomib else Action.RESUME, due),
                lenalidomide=_lenalidomide_after(step, course, shared.lenalidomide_stopped(facts)),
                evidence=(*history, order_line(draft, zone)),
                notes=(f"{step.why}; not yet reflected in an ixazomib order.",),
                suggest=Suggest.UPDATE_DOSE if lowers_ixazomib else Suggest.NOTHING,
                targets=(draft,) if lowers_ixazomib else (),
            )
        )
        updated = updated or lowers_ixazomib
    if not updated:
        decisions += dose_level_due.in_course(draft, course, history, zone, facts)
    return decisions
