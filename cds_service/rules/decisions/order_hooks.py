"""order-sign / order-select: judge the draft ixazomib orders against the label and history."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from cds_service.rules.codes import IXAZOMIB_LEVELS
from cds_service.rules.data_needs import MEDICATIONS
from cds_service.rules.facts import Drug, Facts, Lab, LabValue, MedicationOrder
from cds_service.rules.facts.clinical import Toxicity
from cds_service.rules.facts.labs import (
    ANC_NEW_CYCLE_AT_LEAST,
    PLATELETS_NEW_CYCLE_AT_LEAST,
    count_text,
)
from cds_service.rules.facts.reading import shown
from cds_service.rules.settings import RuleSettings
from cds_service.rules.units import plain

from . import shared, start_dose
from .history import (
    HOLD_THRESHOLDS,
    DoseCourse,
    Step,
    count_episodes,
    dose_course,
    next_lower,
    series_key,
    step_ordered,
    toxicity_episodes,
)
from .model import (
    Action,
    Decision,
    DrugAdvice,
    Indicator,
    Suggest,
    count_line,
    mg,
    order_line,
    toxicity_line,
)

MAX_WEEKLY_MG = Decimal(4)
MAX_DOSES_PER_WEEK = Decimal(1)
DOSES_PER_CYCLE = 3  # days 1, 8 and 15 of a 28-day cycle
NEW_CYCLE_AFTER = timedelta(days=21)  # days 22-28 are the week off: what follows is a new cycle
STEP_RULE_NAMES = {
    "anc-below-500": "ANC < 500/mm3",
    "platelets-below-30k": "platelets < 30,000/mm3",
    "rash-grade-2-3": "rash Grade 2-3",
    "neuropathy-grade-2-pain-or-3": "peripheral neuropathy Grade 2 with pain or Grade 3",
    "other-toxicity-grade-3-4": "other Grade 3-4 toxicity attributed to ixazomib",
}


def decide_order(facts: Facts, settings: RuleSettings) -> list[Decision]:
    drafts = facts.drafts
    course = dose_course(facts, settings.pain_score_max_age)
    zone = shared.zone_name(settings)
    due = course.ixazomib_level if course.started else IXAZOMIB_LEVELS[0]
    history = _course_lines(course, facts, zone)

    decisions: list[Decision] = []
    decisions += shared.pregnancy(facts, settings, drafts)
    decisions += _discontinued_by_history(
        course, drafts, history, shared.lenalidomide_stopped(facts)
    )
    cycle = _cycle_start(course, drafts, facts.now)
    decisions += _counts(facts, settings, course, drafts, cycle)
    decisions += shared.ongoing_toxicities(facts, settings, course, drafts)
    if cycle[0] and course.started is not None:  # before cycle 1 what is there is baseline
        decisions += _non_hematologic_gate(facts, settings, course, cycle[1])
    decisions += _unattributed_recoveries(facts, settings, course)
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
            decisions += _start_level(draft, start_due, zone, decisions)

    decisions += shared.severity_without_grade(facts, settings)
    decisions += shared.interactions(facts, settings)
    decisions += shared.hypersensitivity(facts, settings)
    decisions += shared.data_problems(facts)
    lenalidomide = _lenalidomide_drafts(facts)
    decisions = [_with_lenalidomide_drafts(d, lenalidomide) for d in decisions]
    return shared.recognised_by_text(decisions, [*drafts, *lenalidomide])


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
    evidence = [f"not valid FHIR: {reference}" for reference in facts.unreadable_history]
    if MEDICATIONS in facts.unavailable:
        evidence.append(f"medication references: {facts.unavailable[MEDICATIONS]}")
    return Decision(
        rule="data-unavailable",
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
        f"{mg(s.to_mg) if s.to_mg is not None else 'discontinue'} ({STEP_RULE_NAMES[s.rule]})"
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
    if step.rule not in {"anc-below-500", "platelets-below-30k", "rash-grade-2-3"}:
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


def _counts(
    facts: Facts,
    settings: RuleSettings,
    course: DoseCourse,
    drafts: list[MedicationOrder],
    cycle: tuple[bool, str],
) -> list[Decision]:
    """Hold for a low count now; the new-cycle gate; a missing or stale CBC."""
    zone = shared.zone_name(settings)
    new_cycle, cycle_line = cycle
    decisions: list[Decision] = []
    missing: list[str] = []
    gate_failures: list[str] = []
    gate_lines: list[str] = []
    for lab, gate in (
        (Lab.ANC, ANC_NEW_CYCLE_AT_LEAST),
        (Lab.PLATELETS, PLATELETS_NEW_CYCLE_AT_LEAST),
    ):
        latest = _latest(facts, lab)
        if latest is None:
            missing.append(f"no {lab.value} result")
            continue
        if facts.now - latest.at > settings.cbc_max_age:
            missing.append(
                f"latest {lab.value} is older than {settings.cbc_max_age.days} days: "
                f"{count_line(latest, zone)}"
            )
        threshold = HOLD_THRESHOLDS[lab]
        if latest.value < threshold:
            decisions.append(_hold_for_count(facts, lab, latest, course, drafts, zone))
        elif new_cycle and latest.value < gate and facts.now - latest.at <= settings.cbc_max_age:
            gate_failures.append(f"{lab.value} {count_text(latest.value)}/mm3 < {count_text(gate)}")
        if facts.now - latest.at <= settings.cbc_max_age:
            gate_lines.append(count_line(latest, zone))
    if gate_failures:
        decisions.append(
            Decision(
                rule="new-cycle-gate",
                indicator=Indicator.CRITICAL,
                summary=f"New cycle must wait: {'; '.join(gate_failures)}"[:139],
                ixazomib=DrugAdvice(Action.HOLD),
                lenalidomide=shared.lenalidomide_hold(shared.lenalidomide_stopped(facts)),
                evidence=(*gate_lines, cycle_line),
                notes=(
                    "Start the cycle when ANC >= 1,000/mm3 and platelets >= 75,000/mm3.",
                    shared.LENALIDOMIDE_NOT_ON_RECORD if shared.lenalidomide_stopped(facts) else "",
                ),
                suggest=Suggest.DELETE_DRAFT,
                targets=tuple(drafts),
            )
        )
    if missing:
        decisions.append(
            Decision(
                rule="cbc-missing",
                indicator=Indicator.WARNING,
                summary="No recent CBC: ANC and platelets must be checked before this cycle",
                ixazomib=DrugAdvice(Action.REVIEW),
                evidence=tuple(missing),
                notes=(
                    f"A CBC within {settings.cbc_max_age.days} days is needed to check the hold "
                    "(ANC < 500, platelets < 30,000) and new-cycle criteria; they were not "
                    "checked on current data.",
                ),
            )
        )
    return decisions


def _non_hematologic_gate(
    facts: Facts, settings: RuleSettings, course: DoseCourse, cycle_line: str
) -> list[Decision]:
    """Label 2.2: a new cycle waits until non-hematologic toxicities are back to baseline or
    Grade <= 1, at the prescriber's discretion. Table 3 rows decide neuropathy, rash and
    Grade 3-4 toxicities; this covers what they leave: an "other" toxicity at Grade 2 now."""
    zone = shared.zone_name(settings)
    held = {
        series_key(e.findings[0])
        for e in toxicity_episodes(
            facts, Toxicity.OTHER, 3, course.started, settings.pain_score_max_age
        )
        if e.ended is None
    }
    ongoing = [
        f
        for f in facts.toxicities
        if f.toxicity is Toxicity.OTHER
        and f.ongoing
        and f.grade == 2
        and series_key(f) not in held
        and (shared.baseline_grade(facts, series_key(f), course) or 1) < 2  # worse than baseline
    ]
    if not ongoing:
        return []
    terms = ", ".join(sorted({f.term for f in ongoing}))
    return [
        Decision(
            rule="new-cycle-gate",
            indicator=Indicator.WARNING,
            summary=f"New cycle: Grade 2 {terms[:70]} not yet back to Grade 1 or baseline",
            ixazomib=DrugAdvice(Action.REVIEW),
            evidence=(
                *(toxicity_line(f, zone) for f in ongoing),
                cycle_line,
            ),
            notes=(
                "Before a new cycle the label asks for non-hematologic toxicities back to "
                "baseline or Grade 1 or less, at the prescriber's discretion: decide whether "
                "this cycle starts now or waits.",
            ),
        )
    ]


def _unattributed_recoveries(
    facts: Facts, settings: RuleSettings, course: DoseCourse
) -> list[Decision]:
    """An "other" Grade 3-4 toxicity that resolved with no attribution recorded: the dose on
    resumption depends on whether ixazomib caused it, which only the prescriber can say."""
    if course.started is None or course.ixazomib_level is None:
        return []
    zone = shared.zone_name(settings)
    last = course.last_ixazomib_order
    after = last.starts if last is not None else None
    due = course.ixazomib_level
    lower = next_lower(IXAZOMIB_LEVELS, due)
    decisions = []
    for episode in toxicity_episodes(
        facts, Toxicity.OTHER, 3, course.started, settings.pain_score_max_age
    ):
        if episode.ended is None or episode.attributed_to_ixazomib is not None:
            continue
        if after is not None and episode.ended <= after:
            continue  # a later ixazomib order already decided
        decisions.append(
            Decision(
                rule="other-toxicity-grade-3-4",
                indicator=Indicator.WARNING,
                summary=f"Grade {episode.worst_grade} {episode.term[:50]} resolved: "
                "attributable to ixazomib? It decides the dose",
                ixazomib=DrugAdvice(Action.REVIEW),
                evidence=(
                    *(toxicity_line(f, zone) for f in episode.findings),
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


def _hold_for_count(
    facts: Facts,
    lab: Lab,
    latest: LabValue,
    course: DoseCourse,
    drafts: list[MedicationOrder],
    zone: str,
) -> Decision:
    threshold = HOLD_THRESHOLDS[lab]
    since = course.started or latest.at
    episodes = count_episodes(facts.labs[lab], threshold, since)
    number = episodes[-1].number if episodes else 1
    return shared.hold_for_low_count(
        lab,
        latest,
        number,
        zone,
        Suggest.DELETE_DRAFT,
        tuple(drafts),
        shared.lenalidomide_stopped(facts),
    )


def _starting_dose(
    facts: Facts, settings: RuleSettings, drafts: list[MedicationOrder], stopped: bool
) -> tuple[list[Decision], Decimal]:
    """Hepatic and renal starting dose, only when ixazomib is being started."""
    decisions: list[Decision] = []
    due = IXAZOMIB_LEVELS[0]
    needs_check = any(d.dose_mg is None or d.dose_mg > IXAZOMIB_LEVELS[1] for d in drafts)
    for rule, assess, organ in (
        ("hepatic-start-dose", start_dose.hepatic, "hepatic"),
        ("renal-start-dose", start_dose.renal, "renal"),
    ):
        assessment = assess(facts, settings)
        if assessment.impaired:
            due = IXAZOMIB_LEVELS[1]
            target = next((d for d in drafts if d.dose_mg is None or d.dose_mg > due), None)
            if target is None:
                continue  # the draft already starts at 3 mg or less
            kind = "hepatic impairment" if organ == "hepatic" else "severe renal impairment"
            decisions.append(
                Decision(
                    rule=rule,
                    indicator=Indicator.WARNING,
                    summary=f"Starting ixazomib with {kind}: start at 3 mg",
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
                    rule=rule,
                    indicator=Indicator.WARNING,
                    summary=f"Starting dose: {organ} function unknown; 3 mg may be due",
                    ixazomib=DrugAdvice(Action.REVIEW),
                    evidence=assessment.evidence,
                    notes=(
                        f"Missing: {assessment.missing}. The starting dose is 3 mg in "
                        + (
                            "moderate or severe hepatic impairment (bilirubin > 1.5 x ULN)."
                            if organ == "hepatic"
                            else "severe renal impairment (CrCl < 30 mL/min) or ESRD on dialysis."
                        ),
                    ),
                )
            )
    return decisions, due


def _order_error(draft: MedicationOrder, due: Decimal | None, zone: str) -> Decision | None:
    """Overdose, a dose that is not labelled, or a dose that cannot be read."""
    line = order_line(draft, zone)
    per_week = draft.doses_per_week
    too_often = per_week is not None and per_week > MAX_DOSES_PER_WEEK
    if draft.dose_mg is None and too_often:
        # More than one dose a week is an overdose whatever each dose is (label 2.1): the
        # frequency alone decides, and the correction sets the weekly schedule too.
        reasons = [
            f"{plain(per_week or Decimal(0))} doses a week (at most 1)",
            f"the dose cannot be read: {draft.dose_problem or 'no dose'}",
        ]
        return Decision(
            rule="overdose",
            indicator=Indicator.CRITICAL,
            summary=f"Ixazomib overdose: {reasons[0]}"[:139],
            ixazomib=DrugAdvice(Action.CORRECT_DOSE, due),
            evidence=(line, *reasons),
            notes=(
                "Ixazomib is given once a week (days 1, 8 and 15 of a 28-day cycle); "
                "overdose has been fatal.",
            ),
            suggest=Suggest.UPDATE_DOSE if due is not None else Suggest.NOTHING,
            targets=(draft,) if due is not None else (),
            fix_frequency=True,
        )
    if draft.dose_mg is None:
        return Decision(
            rule="data-uninterpretable",
            indicator=Indicator.WARNING,
            summary="The ixazomib order's dose cannot be read: review it",
            ixazomib=DrugAdvice(Action.REVIEW),
            evidence=(line, draft.dose_problem or "no dose"),
        )
    dose = draft.dose_mg
    weekly = dose * per_week if per_week is not None else dose
    target = due
    if dose > MAX_WEEKLY_MG or too_often or weekly > MAX_WEEKLY_MG:
        reasons = []
        if dose > MAX_WEEKLY_MG:
            reasons.append(f"{plain(dose)} mg per dose is above 4 mg")
        if too_often:
            reasons.append(f"{plain(per_week or Decimal(0))} doses a week (at most 1)")
        if weekly > MAX_WEEKLY_MG and not dose > MAX_WEEKLY_MG:
            reasons.append(f"{plain(weekly)} mg a week (at most 4 mg)")
        return Decision(
            rule="overdose",
            indicator=Indicator.CRITICAL,
            summary=f"Ixazomib overdose: {'; '.join(reasons)}"[:139],
            ixazomib=DrugAdvice(Action.CORRECT_DOSE, target),
            evidence=(line, *reasons),
            notes=(
                "Ixazomib is given once a week (days 1, 8 and 15 of a 28-day cycle); "
                "overdose has been fatal.",
            ),
            suggest=Suggest.UPDATE_DOSE if target is not None else Suggest.NOTHING,
            targets=(draft,) if target is not None else (),
            fix_frequency=too_often,
        )
    strength = draft.strength_mg
    weeks_in_a_row = per_week == MAX_DOSES_PER_WEEK and (draft.dose_count or 0) > DOSES_PER_CYCLE
    if dose not in IXAZOMIB_LEVELS:
        summary = f"Ixazomib {plain(dose)} mg is not a labelled dose (4, 3 or 2.3 mg)"
    elif strength is not None and dose != strength:
        # Every labelled dose is one capsule of its own strength (2.3, 3 or 4 mg).
        summary = f"Ixazomib {plain(dose)} mg ordered as the {plain(strength)} mg capsule"
    elif weeks_in_a_row:
        summary = (
            f"Ixazomib weekly for {draft.dose_count} doses in a row: the label gives 3 "
            "(days 1, 8, 15), then a week off"
        )
    else:
        return None
    return Decision(
        rule="dose-not-labelled",
        indicator=Indicator.WARNING,
        summary=summary,
        ixazomib=DrugAdvice(Action.CORRECT_DOSE, target),
        evidence=(line,),
        notes=(f"The dose due is {mg(target)}: one capsule of that strength, once weekly.",),
        suggest=Suggest.UPDATE_DOSE if target is not None else Suggest.NOTHING,
        targets=(draft,) if target is not None else (),
        fix_frequency=weeks_in_a_row,
    )


def _start_level(
    draft: MedicationOrder, due: Decimal, zone: str, decisions: list[Decision]
) -> list[Decision]:
    """A first order at another labelled dose than the starting dose due."""
    if any(d.targets == (draft,) and d.suggest is Suggest.UPDATE_DOSE for d in decisions):
        return []
    return [
        Decision(
            rule="dose-level-due",
            indicator=Indicator.INFO,
            summary=f"Starting dose due is {mg(due)}; the order says {mg(draft.dose_mg)}",
            ixazomib=DrugAdvice(Action.CORRECT_DOSE, due),
            evidence=(order_line(draft, zone),),
            notes=(
                "The label starts ixazomib at 4 mg, or 3 mg in moderate/severe hepatic or "
                "severe renal impairment.",
            ),
            suggest=Suggest.UPDATE_DOSE,
            targets=(draft,),
        )
    ]


def _reduction_never_ordered(course: DoseCourse, facts: Facts) -> bool:
    """The last required ixazomib reduction has not been followed by an order at that level."""
    step = next((s for s in reversed(course.steps) if s.drug is Drug.IXAZOMIB), None)
    if step is None or step.to_mg is None:
        return False
    return not step_ordered(step, facts.ixazomib_history())


def _dose_due(
    draft: MedicationOrder,
    course: DoseCourse,
    history: tuple[str, ...],
    zone: str,
    facts: Facts,
) -> list[Decision]:
    """Recovery advice not yet acted on, and a draft dose that differs from the level due."""
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
                    f"After {STEP_RULE_NAMES[step.rule]}: ixazomib {mg(due)}"
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
    if not updated and draft.dose_mg is not None and draft.dose_mg != due:
        owed_now = draft.dose_mg > due and _reduction_never_ordered(course, facts)
        decisions.append(
            Decision(
                rule="dose-level-due",
                indicator=Indicator.WARNING if draft.dose_mg > due else Indicator.INFO,
                summary=f"Ixazomib dose level due is {mg(due)}; the order says {mg(draft.dose_mg)}",
                ixazomib=DrugAdvice(Action.REDUCE if owed_now else Action.CORRECT_DOSE, due),
                evidence=(*history, order_line(draft, zone)),
                notes=(
                    "Dose levels only go down (4 -> 3 -> 2.3 mg); a reduction the label "
                    "required is kept.",
                ),
                suggest=Suggest.UPDATE_DOSE,
                targets=(draft,),
            )
        )
    return decisions
