"""What the rules share: lenalidomide's state, toxicity episodes now, the hold of a low count,
and the data checks both hooks make."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from cds_service.rules.facts import Drug, Facts, Lab, LabValue, MedicationOrder
from cds_service.rules.facts.clinical import Toxicity, ToxicityFinding
from cds_service.rules.facts.labs import count_text
from cds_service.rules.prefetch_keys import DESCRIPTIONS
from cds_service.rules.settings import RuleSettings

from .episodes import ToxicityEpisode, series_key, toxicity_episodes
from .label import data_unavailable, data_uninterpretable
from .label.rule import CountRow, Now
from .model import (
    Action,
    Decision,
    DrugAdvice,
    Indicator,
    Suggest,
    count_line,
    lab_line,
    toxicity_line,
)

if TYPE_CHECKING:
    from .history import DoseCourse


def zone_name(settings: RuleSettings) -> str:
    return str(settings.default_timezone)


def lenalidomide_stopped(facts: Facts) -> bool:
    """Lenalidomide has been stopped: the latest lenalidomide order on record is stopped, and
    none is active, on hold or being ordered with this call. Then advice to withhold or reduce
    it would be advice about a drug the patient no longer takes (the card says it is not on
    record instead). No lenalidomide order at all is not "stopped": the regimen is given with
    lenalidomide, and its orders may be kept elsewhere (the advice about it stays)."""
    if any(o.drug is Drug.LENALIDOMIDE for o in facts.other_drafts):
        return False
    orders = [o for o in facts.history if o.drug is Drug.LENALIDOMIDE]  # by start
    if not orders or any(o.status in {"active", "on-hold"} for o in orders):
        return False
    return orders[-1].status == "stopped"


LENALIDOMIDE_NOT_ON_RECORD = (
    "No active or on-hold lenalidomide order is on record (the latest one is stopped): no "
    "lenalidomide advice. If the patient still takes it, the label's lenalidomide steps apply."
)


def lenalidomide_hold(stopped: bool) -> DrugAdvice | None:
    """Withhold lenalidomide, unless it has been stopped (``lenalidomide_stopped``)."""
    return None if stopped else DrugAdvice(Action.HOLD)


def current_findings(facts: Facts, toxicity: Toxicity) -> list[ToxicityFinding]:
    return [f for f in facts.toxicities if f.toxicity is toxicity and f.ongoing and f.grade]


def with_pain_now(facts: Facts, window: timedelta, zone: str) -> list[str]:
    """Signals of neuropathic pain now (no standard field: pain events, pain scores > 0)."""
    signals = [toxicity_line(f, zone) for f in current_findings(facts, Toxicity.NEUROPATHIC_PAIN)]
    scores = [s for s in facts.labs[Lab.PAIN_SCORE] if facts.now - s.at <= window]
    if scores and scores[-1].value > 0:
        signals.append(lab_line(scores[-1], zone))
    return signals


def baseline_grade(facts: Facts, series: str, course: DoseCourse) -> int | None:
    """The worst grade of a toxicity recorded before ixazomib started: its baseline, which
    the label accepts as well as Grade <= 1 ("back to baseline or Grade 1")."""
    started = course.started
    if started is None:
        return None
    before = [
        f.grade
        for f in facts.toxicities
        if series_key(f) == series and f.grade is not None and f.at is not None and f.at < started
    ]
    return max(before) if before else None


def _at_baseline(facts: Facts, episode: ToxicityEpisode, course: DoseCourse) -> bool:
    """An open episode that began before ixazomib and is no worse since it started."""
    baseline = baseline_grade(facts, series_key(episode.findings[0]), course)
    if baseline is None or course.started is None:
        return False
    since = [f.grade or 0 for f in episode.findings if f.at is None or f.at >= course.started]
    return max(since, default=0) <= baseline


def open_episodes(
    facts: Facts, toxicity: Toxicity, at_least: int, course: DoseCourse, window: timedelta
) -> list[ToxicityEpisode]:
    episodes = toxicity_episodes(facts, toxicity, at_least, course.started, window)
    return [e for e in episodes if e.ended is None and not _at_baseline(facts, e, course)]


def grade_4_since_start(
    facts: Facts, toxicity: Toxicity, course: DoseCourse
) -> ToxicityFinding | None:
    """Grade 4 (or 5) now, or at any time since ixazomib started: it has no way back."""
    started = course.started
    found = [
        f
        for f in facts.toxicities
        if f.toxicity is toxicity
        and (f.grade or 0) >= 4
        and (f.ongoing or (started is not None and f.at is not None and f.at >= started))
    ]
    return max(found, key=lambda f: (f.grade or 0, f.at or facts.now)) if found else None


def episode_lines(episode: ToxicityEpisode, zone: str) -> tuple[str, ...]:
    """The finding that set the worst grade and, when it differs, the latest one."""
    worst = max(episode.findings, key=lambda f: f.grade or 0)
    latest = episode.findings[-1]
    lines = [toxicity_line(worst, zone)]
    if latest is not worst:
        lines.append(f"latest: {toxicity_line(latest, zone)}")
    return tuple(lines)


def neuropathy_hold(
    rule: str,
    grade: int,
    pain_text: str,
    evidence: tuple[str, ...],
    resumption: str,
    drafts: list[MedicationOrder],
) -> Decision:
    """Table 3 neuropathy rows below Grade 4: withhold ixazomib; ``resumption`` says how."""
    return Decision(
        rule=rule,
        indicator=Indicator.CRITICAL,
        summary=f"Peripheral neuropathy Grade {grade} {pain_text}: withhold ixazomib",
        ixazomib=DrugAdvice(Action.HOLD),
        evidence=evidence,
        notes=(f"When it is {resumption}.",),
        suggest=Suggest.DELETE_DRAFT,
        targets=tuple(drafts),
    )


def discontinue_regimen(
    rule: str, finding: ToxicityFinding, evidence: tuple[str, ...], drafts: list[MedicationOrder]
) -> Decision:
    return Decision(
        rule=rule,
        indicator=Indicator.CRITICAL,
        summary=f"{finding.term[:60]} Grade {finding.grade}: discontinue the regimen",
        ixazomib=DrugAdvice(Action.DISCONTINUE),
        lenalidomide=DrugAdvice(Action.DISCONTINUE),
        evidence=evidence,
        suggest=Suggest.DELETE_DRAFT,
        targets=tuple(drafts),
    )


def data_problems(facts: Facts, only: set[str] | None = None) -> list[Decision]:
    """Unreadable data (only those naming one of ``only`` when given) and unavailable data."""
    decisions: list[Decision] = []
    unreadable = [*facts.problems.uninterpretable, *facts.problems.invalid]
    if only is not None:
        unreadable = [p for p in unreadable if any(_names(p, ref) for ref in only)]
    if unreadable:
        decisions.append(
            Decision(
                rule=data_uninterpretable.RULE.id,
                indicator=Indicator.WARNING,
                summary="Some data could not be read exactly and were not used: review them",
                ixazomib=DrugAdvice(Action.REVIEW),
                evidence=tuple(unreadable),
                notes=(
                    "Values are never guessed: the checks that needed these data were made "
                    "without them.",
                ),
            )
        )
    if facts.unavailable and only is None:
        decisions.append(
            Decision(
                rule=data_unavailable.RULE.id,
                indicator=Indicator.WARNING,
                summary="Part of the record could not be fetched; some checks were not made",
                ixazomib=DrugAdvice(Action.REVIEW),
                evidence=tuple(
                    f"{key} ({DESCRIPTIONS.get(key, key)}): {reason}"
                    for key, reason in sorted(facts.unavailable.items())
                ),
                notes=("The checks that read these data were not made; review them yourself.",),
            )
        )
    if facts.left_out and only is None:
        decisions.append(
            Decision(
                rule=data_unavailable.RULE.id,
                indicator=Indicator.WARNING,
                summary="Data about another patient was left out; some checks may lack data",
                ixazomib=DrugAdvice(Action.REVIEW),
                evidence=tuple(
                    f"{key}: {reason}" for key, reason in sorted(facts.left_out.items())
                ),
                notes=(
                    "The checks were made without these data. Check the record, and tell the "
                    "FHIR server's administrators that it answers other patients' data.",
                ),
            )
        )
    return decisions


def recognised_by_text(decisions: list[Decision], orders: list[MedicationOrder]) -> list[Decision]:
    """Each decision with a note naming the orders whose drug no code named, only their text:
    the prescriber sees that the advice rests on reading a name, and which."""
    notes = tuple(
        f"{order.drug.value} order {order.reference} was recognised by its text, "
        f"'{order.recognised_by_text}' (no RxNorm, NDC or ATC code names the drug)"
        + (
            f"; the capsule strength was read from the text: {order.strength_text}"
            if order.strength_text
            else ""
        )
        + "."
        for order in orders
        if order.recognised_by_text is not None
    )
    if not notes:
        return decisions
    return [replace(d, notes=(*d.notes, *notes)) for d in decisions]


def _names(problem: str, reference: str) -> bool:
    """Does a problem text name this resource ("Observation/1" is not "Observation/12")?"""
    return any(f"{reference}{end}" in f"{problem} " for end in (" ", ":", ")"))


def unresolved_medication(orders: list[str], reason: str | None) -> Decision:
    return Decision(
        rule=data_unavailable.RULE.id,
        indicator=Indicator.WARNING,
        summary="The ordered medication could not be identified: ixazomib checks not made",
        ixazomib=DrugAdvice(Action.REVIEW),
        evidence=tuple(
            f"{order}: its medication (medicationCodeableConcept or medicationReference) "
            "could not be read" + (f" ({reason})" if reason else "")
            for order in orders
        ),
        notes=(
            "If this is an ixazomib order, check its dose, the counts and the toxicities "
            "yourself; none of the label checks were made.",
        ),
    )


def hold_for_low_count(
    row: CountRow,
    low: LabValue,
    occurrence: int | None,
    zone: str,
    suggest: Suggest,
    targets: tuple[MedicationOrder, ...],
    lenalidomide_was_stopped: bool = False,
) -> Decision:
    """Label Table 3 (``row``): ANC < 500 or platelets < 30,000 withholds ixazomib and
    lenalidomide; the card says which drug is reduced when this ``occurrence`` recovers (they
    alternate). With lenalidomide stopped (``lenalidomide_stopped``) only ixazomib is
    withheld; on recovery it resumes at its most recent dose or one level lower, as the
    occurrence says. ``occurrence`` None: it is not known (an ixazomib order has no start
    date), and the card says that the recovery's reduction cannot be told yet."""
    lab, threshold = row.lab, row.hold_below
    stopped = lenalidomide_was_stopped
    if occurrence is None:
        on_recovery = (
            "which drug is reduced depends on the occurrence, which the dose history cannot "
            "tell (an ixazomib order has no start date): review the history before resuming"
        )
    elif occurrence % 2 == 1:
        on_recovery = (
            "ixazomib at its most recent dose"
            if stopped
            else "lenalidomide one level lower, ixazomib at its most recent dose"
        )
    else:
        on_recovery = "ixazomib one level lower" + (
            "" if stopped else ", lenalidomide at its most recent dose"
        )
    return Decision(
        rule=row.id,
        indicator=Indicator.CRITICAL,
        summary=f"{lab.value} {count_text(low.value)}/mm3 (< {count_text(threshold)}): "
        + ("withhold ixazomib" if stopped else "withhold ixazomib and lenalidomide"),
        ixazomib=DrugAdvice(Action.HOLD),
        lenalidomide=lenalidomide_hold(stopped),
        evidence=(
            count_line(low, zone),
            f"occurrence {occurrence} since ixazomib started"
            if occurrence is not None
            else "occurrence unknown: an ixazomib order has no start date",
        ),
        notes=(
            f"Withhold {'ixazomib' if stopped else 'both'} until {lab.value} >= "
            f"{count_text(threshold)}/mm3; on recovery"
            + (f" (occurrence {occurrence})" if occurrence is not None else "")
            + f": {on_recovery}.{row.hold_note}",
            LENALIDOMIDE_NOT_ON_RECORD if stopped else "",
        ),
        suggest=suggest,
        targets=targets,
    )


def worst_open_neuropathy(now: Now) -> tuple[ToxicityEpisode, list[str]] | None:
    """The open neuropathy episode (Grade 2 or worse, not back to Grade 1) with the worst
    grade, and the signals of neuropathic pain now: what the neuropathy rows choose between."""
    window = now.settings.pain_score_max_age
    episodes = open_episodes(now.facts, Toxicity.NEUROPATHY, 2, now.course, window)
    if not episodes:
        return None
    worst = max(episodes, key=lambda e: e.worst_grade)
    return worst, with_pain_now(now.facts, window, now.zone)
