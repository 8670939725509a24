"""patient-view: the ixazomib course at a glance, when the chart of a patient on it opens.

Nothing here decides anew: the dose course, its reductions, the holds in force and the
discontinuations owed are what the order and lab hooks compute (``history.dose_course``,
``shared``, ``order_hooks``, ``lab_hook``), read for a patient with no order in hand. This
module only arranges them into one view:

- silent (``None``) for a patient not on ixazomib (no ixazomib order active or on hold and
  none begun within two cycles: the lab hook's reading), unless the regimen orders could not
  be read, when whether the patient is on it is unknown and the view says so;
- ``due``: what needs doing now (a hold in force, a discontinuation owed, a reduction the
  label requires that no order has made yet), most urgent first; the card's indicator is
  ``info`` when nothing is due;
- ``review``: data the service could not read or fetch (the view still shows the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cds_service.rules.codes import IXAZOMIB_LEVELS
from cds_service.rules.facts import Drug, Facts, Lab, LabValue
from cds_service.rules.facts.labs import (
    ANC_NEW_CYCLE_AT_LEAST,
    PLATELETS_NEW_CYCLE_AT_LEAST,
    count_text,
)
from cds_service.rules.facts.reading import shown
from cds_service.rules.prefetch_keys import MEDICATIONS
from cds_service.rules.settings import RuleSettings

from . import shared
from .episodes import Step, next_lower
from .history import DoseCourse, dose_course
from .lab_hook import _on_treatment
from .label import data_unavailable, dose_level_due, pregnancy, registry
from .label.dose_not_labelled import DOSES_PER_CYCLE
from .label.rule import Now
from .model import (
    Action,
    Decision,
    DrugAdvice,
    Indicator,
    Suggest,
    count_line,
    mg,
    order_line,
)
from .order_hooks import (
    NEW_CYCLE_AFTER,
    _discontinued_by_history,
    _hold_for_count,
    _step_name,
    toxicity_holds,
)

CYCLE_DAYS = 28
DOSE_DAYS = (1, 8, 15)  # of each 28-day cycle (label 2.1)
NEW_CYCLE_GATE = {Lab.ANC: ANC_NEW_CYCLE_AT_LEAST, Lab.PLATELETS: PLATELETS_NEW_CYCLE_AT_LEAST}
UNREAD = "Data the service could not read or fetch"
_URGENCY = {Indicator.CRITICAL: 0, Indicator.WARNING: 1, Indicator.INFO: 2}
_ACTION_URGENCY = {Action.DISCONTINUE: 0, Action.HOLD: 1, Action.REDUCE: 2}


@dataclass(frozen=True)
class Section:
    heading: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class CourseView:
    summary: str
    indicator: Indicator  # info unless something is due now
    sections: tuple[Section, ...]
    due: tuple[Decision, ...] = ()  # most urgent first
    review: Decision | None = None  # data the service could not read

    @property
    def advice(self) -> Decision | None:
        """The advice the card carries as its recommendation: the most urgent thing due now,
        else the review of unreadable data; None: the card informs only."""
        return self.due[0] if self.due else self.review


@dataclass(frozen=True)
class Cycle:
    number: int  # 1 = the first ixazomib order's cycle
    start: datetime
    day: int  # 1 = the cycle's first day


def course_view(facts: Facts, settings: RuleSettings) -> CourseView | None:
    """The course card's content, or None when the patient is not on ixazomib."""
    course = dose_course(facts, settings.pain_score_max_age)
    problems = shared.data_problems(facts)
    if course.started is None:
        if facts.unreadable_history or MEDICATIONS in facts.unavailable:
            return _course_unknown(facts, problems)
        return None
    if not _on_treatment(facts):
        return None
    zone = shared.zone_name(settings)
    cycle = current_cycle(facts, settings)
    due = tuple(sorted(_due_now(facts, settings, course), key=_urgency))
    # Checks the order hooks make that ask for review whatever the dose (an inducer, a
    # hypersensitivity, a toxicity without a grade): shown, never an indicator of their own.
    reviews = [d for check in registry.PATIENT_CHECKS for d in check.check(facts, settings)]
    sections = [Section("Due now", tuple(_due_line(d) for d in due))] if due else []
    sections += [
        Section("Dose level now", _levels(course, facts)),
        Section("How it was reached", _how_reached(course, facts, zone)),
        Section("Holds in force", _holds(due, facts) or ("none",)),
        Section("Cycle", (_cycle_line(cycle),) if cycle else ("no ixazomib order start date",)),
        Section("Next dose", (_next_dose(course, cycle, due, facts),)),
        Section("New-cycle gate (label 2.2)", _gate(facts, settings, cycle)),
        Section("Starting-dose factors (label 2.4, 2.5)", _start_factors(course, facts, settings)),
    ]
    if reviews:
        sections.append(Section("Also to review", tuple(_due_line(d) for d in reviews)))
    if problems:
        sections.append(Section(UNREAD, _problem_lines(problems)))
    where = f"cycle {cycle.number} day {cycle.day}" if cycle else "cycle unknown"
    if due:
        summary = f"Ixazomib course, {where}: {due[0].summary}"
    elif course.ixazomib_level is None:
        summary = f"Ixazomib course, {where}: dose level unknown"
    else:
        summary = f"Ixazomib {mg(course.ixazomib_level)}, {where}: nothing due now"
    return CourseView(
        summary=summary[:139],
        indicator=due[0].indicator if due else Indicator.INFO,
        sections=tuple(sections),
        due=due,
        review=next(iter([*problems, *reviews]), None),
    )


def current_cycle(facts: Facts, settings: RuleSettings) -> Cycle | None:
    """The cycle now: one per ixazomib order begun 21 days or more after the previous cycle
    began (as the order hooks read a new cycle); an order sooner resumes that cycle."""
    starts: list[datetime] = []
    for order in facts.ixazomib_history():
        if order.starts is None:
            continue
        if not starts or order.starts - starts[-1] >= NEW_CYCLE_AFTER:
            starts.append(order.starts)
    if not starts:
        return None
    zone = settings.default_timezone
    day = (facts.now.astimezone(zone).date() - starts[-1].astimezone(zone).date()).days + 1
    return Cycle(len(starts), starts[-1], day)


def _due_now(facts: Facts, settings: RuleSettings, course: DoseCourse) -> list[Decision]:
    """What the order and lab hooks would say is due for this patient now, with no order in
    hand: pregnancy, a discontinuation the history owes, holds for a count below threshold or
    an open toxicity, and a reduction the label requires that no order has made yet."""
    now = Now(facts, settings, course, [])
    zone = now.zone
    stopped = shared.lenalidomide_stopped(facts)
    found: list[Decision] = []
    found += pregnancy.decide(facts, settings, [])
    # The course itself is the card's "How it was reached": the evidence here is the step
    # that leaves no level below 2.3 mg.
    ends = [s for s in course.steps if s.drug is Drug.IXAZOMIB and s.to_mg is None]
    last_steps = tuple(_step_line(s) for s in ends[-1:])
    found += _discontinued_by_history(course, [], last_steps, stopped)
    for row in registry.COUNT_ROWS:
        found += _hold_for_count(now, row)  # the latest count below the row's threshold
    found += toxicity_holds(now)
    owed = _reduction_owed(facts, course, stopped, zone)
    if owed is not None:
        found.append(owed)
    active = tuple(facts.active_orders)
    # A hold in force puts the active regimen orders on hold (as at the lab-result hook).
    return [
        replace(d, suggest=Suggest.HOLD_ACTIVE, targets=active)
        if d.ixazomib.action is Action.HOLD and active
        else replace(d, suggest=Suggest.NOTHING, targets=())
        for d in found
        if _advises_now(d)
    ]


def _advises_now(decision: Decision) -> bool:
    actions = {a.action for a in (decision.ixazomib, decision.lenalidomide) if a is not None}
    return bool(actions & {Action.HOLD, Action.DISCONTINUE, Action.REDUCE})


def _urgency(decision: Decision) -> tuple[int, int]:
    action = _ACTION_URGENCY.get(decision.ixazomib.action, 3)
    return _URGENCY[decision.indicator], action


def _reduction_owed(facts: Facts, course: DoseCourse, stopped: bool, zone: str) -> Decision | None:
    """A reduction the course requires that the latest orders do not make: the latest ixazomib
    order's dose above the level due, or a lenalidomide step no later order made. Named, as at
    order-sign, under the step's rule, or ``dose-level-due`` when no step since the latest
    order explains it (a later order at a higher dose never undoes a reduction)."""
    level = course.ixazomib_level
    last = course.last_ixazomib_order
    if level is None or last is None:
        return None
    pending = course.pending_steps(facts.history)
    ixazomib_owed = last.dose_mg is not None and last.dose_mg > level
    ixazomib_step = next((s for s in reversed(pending) if s.drug is Drug.IXAZOMIB), None)
    lenalidomide_step = next(
        (s for s in reversed(pending) if s.drug is Drug.LENALIDOMIDE and s.to_mg is not None),
        None,
    )
    if stopped:
        lenalidomide_step = None  # no advice about a drug the patient no longer takes
    if ixazomib_owed:
        rule = ixazomib_step.rule if ixazomib_step is not None else dose_level_due.RULE.id
    elif lenalidomide_step is not None:
        rule = lenalidomide_step.rule
    else:
        return None
    parts = []
    reasons = [order_line(last, zone)]
    if ixazomib_owed:
        parts.append(f"ixazomib {mg(level)} (latest order {mg(last.dose_mg)})")
        reasons += [_step_line(ixazomib_step)] if ixazomib_step is not None else []
    if lenalidomide_step is not None:
        parts.append(f"lenalidomide {mg(lenalidomide_step.to_mg)}")
        reasons.append(_step_line(lenalidomide_step))
    return Decision(
        rule=rule,
        indicator=Indicator.WARNING,
        summary=f"Reduction not yet ordered: {'; '.join(parts)}",
        ixazomib=DrugAdvice(Action.REDUCE if ixazomib_owed else Action.RESUME, level),
        lenalidomide=(
            DrugAdvice(Action.REDUCE, lenalidomide_step.to_mg)
            if lenalidomide_step is not None
            else None
        ),
        evidence=tuple(reasons),
        notes=("The next doses are due at the reduced level; no order on record has it.",),
    )


def _due_line(decision: Decision) -> str:
    evidence = "; ".join(decision.evidence)
    return f"{decision.summary} (rule {decision.rule})" + (f": {evidence}" if evidence else "")


def _problem_lines(problems: list[Decision]) -> tuple[str, ...]:
    return tuple(line for decision in problems for line in decision.evidence)


def _levels(course: DoseCourse, facts: Facts) -> tuple[str, ...]:
    if course.ixazomib_discontinued:
        ixazomib = "ixazomib: none (no dose level below 2.3 mg: discontinue)"
    elif not course.ixazomib_known:
        ixazomib = "ixazomib: unknown (no ixazomib order gives a readable dose)"
    else:
        lower = next_lower(IXAZOMIB_LEVELS, course.ixazomib_level)
        below = f"next lower level {mg(lower)}" if lower is not None else "the lowest level"
        ixazomib = f"ixazomib: {mg(course.ixazomib_level)}; {below}"
    started = f"started at {mg(course.start_dose)} on {shown(course.started)}"
    if shared.lenalidomide_stopped(facts):
        lenalidomide = "lenalidomide: stopped (the latest lenalidomide order is stopped)"
    elif course.lenalidomide_level is None:
        lenalidomide = "lenalidomide: no dose on record"
    else:
        lenalidomide = f"lenalidomide: {mg(course.lenalidomide_level)}"
    return (f"{ixazomib} ({started})", lenalidomide)


def _step_line(step: Step) -> str:
    to = mg(step.to_mg) if step.to_mg is not None else "discontinue"
    return (
        f"{step.at:%Y-%m-%d}: {step.drug.value} {mg(step.from_mg)} -> {to}, after "
        f"{step.why} (rule {step.rule}: {_step_name(step)})"
    )


def _how_reached(course: DoseCourse, facts: Facts, zone: str) -> tuple[str, ...]:
    """Each reduction the label required, with its date, rule and data, and each order that
    changed a dose (a prescriber's lower dose counts too), in time order."""
    lines: list[tuple[datetime, str]] = [(s.at, _step_line(s)) for s in course.steps]
    previous: dict[Drug, object] = {}
    for order in facts.history:
        if order.dose_mg is None or order.starts is None:
            continue
        if previous.get(order.drug) != order.dose_mg:
            first = order.drug not in previous
            what = "first order" if first else "dose ordered"
            line = f"{order.starts:%Y-%m-%d}: {what}: {order_line(order, zone)}"
            lines.append((order.starts, line))
        previous[order.drug] = order.dose_mg
    if not course.steps:
        lines.append((course.started or facts.now, "no reduction required by the label so far"))
    return tuple(line for _, line in sorted(lines, key=lambda item: item[0]))


def _holds(due: tuple[Decision, ...], facts: Facts) -> tuple[str, ...]:
    """Each hold in force and what ends it."""
    lines = []
    for decision in due:
        advices = [a for a in (decision.ixazomib, decision.lenalidomide) if a is not None]
        if not any(a.action is Action.HOLD for a in advices):
            continue
        ends = _count_hold_end(decision, facts) or "; ".join(n for n in decision.notes if n)
        lines.append(f"{decision.summary} (rule {decision.rule}). Ends: {ends}")
    return tuple(lines)


def _count_hold_end(decision: Decision, facts: Facts) -> str | None:
    row = next((row for row in registry.COUNT_ROWS if row.id == decision.rule), None)
    if row is None or not facts.labs[row.lab]:
        return None
    latest = facts.labs[row.lab][-1]
    return (
        f"until {row.lab.value} >= {count_text(row.hold_below)}/mm3; latest "
        f"{count_text(latest.value)}/mm3 on {shown(latest.at)} [{latest.reference}]"
    )


def _cycle_line(cycle: Cycle) -> str:
    beyond = (
        f" (past the {CYCLE_DAYS}-day cycle: no later ixazomib order on record)"
        if cycle.day > CYCLE_DAYS
        else ""
    )
    return (
        f"cycle {cycle.number}, day {cycle.day}{beyond}; the cycle began {shown(cycle.start)} "
        f"(cycles counted from ixazomib orders begun {NEW_CYCLE_AFTER.days} days or more apart)"
    )


def _next_dose(
    course: DoseCourse, cycle: Cycle | None, due: tuple[Decision, ...], facts: Facts
) -> str:
    if any(d.ixazomib.action is Action.DISCONTINUE for d in due):
        return "none: ixazomib is to be discontinued"
    if any(d.ixazomib.action is Action.HOLD for d in due):
        return "none while ixazomib is withheld (see Holds in force)"
    if cycle is None:
        return "unknown: no ixazomib order gives a start date"
    dose = mg(course.ixazomib_level)
    later = [d for d in DOSE_DAYS if d >= cycle.day]
    if later:
        day = later[0]
        when = cycle.start + timedelta(days=day - 1)
        today = " (today)" if day == cycle.day else ""
        return (
            f"ixazomib {dose} on day {day} of cycle {cycle.number}, {when:%Y-%m-%d}{today} "
            f"(days {', '.join(map(str, DOSE_DAYS))}: {DOSES_PER_CYCLE} doses a cycle, "
            "by the order's start; doses given are not read)"
        )
    when = cycle.start + timedelta(days=CYCLE_DAYS)
    return (
        f"ixazomib {dose} on day 1 of cycle {cycle.number + 1}, from {when:%Y-%m-%d}, once the "
        "new-cycle gate is met"
    )


def _gate(facts: Facts, settings: RuleSettings, cycle: Cycle | None) -> tuple[str, ...]:
    zone = shared.zone_name(settings)
    lines = []
    for lab, gate in NEW_CYCLE_GATE.items():
        latest: LabValue | None = facts.labs[lab][-1] if facts.labs[lab] else None
        wanted = f"{lab.value} >= {count_text(gate)}/mm3"
        if latest is None:
            lines.append(f"{wanted}: no {lab.value} result on record")
            continue
        met = "met" if latest.value >= gate else "NOT met"
        stale = (
            f"; older than {settings.cbc_max_age.days} days: a new count is needed before day 1"
            if facts.now - latest.at > settings.cbc_max_age
            else ""
        )
        lines.append(f"{wanted}: {met} by the latest, {count_line(latest, zone)}{stale}")
    if cycle is not None and cycle.day <= DOSE_DAYS[-1]:
        lines.append(f"applies before day 1 of cycle {cycle.number + 1}")
    return tuple(lines)


def _start_factors(course: DoseCourse, facts: Facts, settings: RuleSettings) -> tuple[str, ...]:
    reduced = course.start_dose is not None and course.start_dose < IXAZOMIB_LEVELS[0]
    lines = [
        f"ixazomib started at {mg(course.start_dose)}"
        + (" (a reduced starting dose)" if reduced else "")
    ]
    for rule in registry.START_DOSE_RULES:
        assessment = rule.assess(facts, settings)
        if assessment.impaired is None:
            lines.append(f"{rule.organ}: unknown now (missing {assessment.missing})")
        else:
            lines.append(f"{rule.organ}: " + "; ".join(assessment.evidence))
        if assessment.assumption:
            lines.append(assessment.assumption)
    return tuple(lines)


def _course_unknown(facts: Facts, problems: list[Decision]) -> CourseView:
    """No readable ixazomib order, but regimen orders or their Medications could not be read:
    whether the patient is on ixazomib is unknown, and silence would pass it as "not on it"."""
    evidence = [f"{why}: {reference}" for reference, why in facts.unreadable_history.items()]
    if MEDICATIONS in facts.unavailable:
        evidence.append(f"medication references: {facts.unavailable[MEDICATIONS]}")
    review = Decision(
        rule=data_unavailable.RULE.id,
        indicator=Indicator.INFO,
        summary="Ixazomib course unknown: regimen orders on record could not be read",
        ixazomib=DrugAdvice(Action.REVIEW),
        evidence=tuple(evidence),
        notes=("Whether the patient is on ixazomib, and at which dose, is unknown.",),
    )
    lines = (*evidence, *(line for p in problems for line in p.evidence if line not in evidence))
    return CourseView(
        summary=review.summary,
        indicator=Indicator.INFO,
        sections=(Section(UNREAD, lines),),
        review=review,
    )
