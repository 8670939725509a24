"""The treatment history the label needs: episodes, their order, and the dose level due.

Dose levels only go down (4 -> 3 -> 2.3 mg; lenalidomide 25 -> 20 -> 15 -> 10 -> 5 -> 2.5 mg).
The course is replayed in time order:

- an ixazomib (lenalidomide) order sets the level to min(level, ordered dose): a prescriber's
  lower dose counts, a higher one never undoes a reduction the label required;
- each recovery from an episode that owes a reduction lowers the drug it names by one level
  (platelets < 30,000, ANC < 500 and rash Grade 2-3 alternate: the 1st, 3rd... recovery
  lowers lenalidomide, the 2nd, 4th... ixazomib; neuropathy Grade 2 with pain or Grade 3,
  and other Grade 3-4 toxicity attributed to ixazomib, lower ixazomib);
- below 2.3 mg ixazomib is discontinued.

Episodes count from the day ixazomib was first started; each kind (platelets, ANC, rash) has
its own alternation, as each Table 3 row describes its own recurrences.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

from cds_service.rules.codes import IXAZOMIB_LEVELS, LENALIDOMIDE_LEVELS
from cds_service.rules.facts import Drug, Facts, Lab, LabValue, MedicationOrder
from cds_service.rules.facts.clinical import Toxicity, ToxicityFinding
from cds_service.rules.facts.labs import ANC_HOLD_BELOW, PLATELETS_HOLD_BELOW, count_text

HOLD_THRESHOLDS = {Lab.ANC: ANC_HOLD_BELOW, Lab.PLATELETS: PLATELETS_HOLD_BELOW}
HOLD_RULES = {Lab.ANC: "anc-below-500", Lab.PLATELETS: "platelets-below-30k"}


def next_lower(levels: tuple[Decimal, ...], dose: Decimal | None) -> Decimal | None:
    """The next lower level below a dose; None when there is none (discontinue)."""
    if dose is None:
        return None
    return next((level for level in levels if level < dose), None)


@dataclass(frozen=True)
class Episode:
    """A run of results below a threshold, ended by the first result back at or above it."""

    lab: Lab
    number: int  # 1 = first occurrence since ixazomib started
    lows: tuple[LabValue, ...]
    recovery: LabValue | None  # None: still below

    @property
    def lowers_lenalidomide(self) -> bool:
        return self.number % 2 == 1


def count_episodes(series: list[LabValue], threshold: Decimal, since: datetime) -> list[Episode]:
    episodes: list[Episode] = []
    lows: list[LabValue] = []
    for value in series:
        if value.at < since:
            continue
        if value.value < threshold:
            lows.append(value)
        elif lows:
            episodes.append(Episode(value.lab, len(episodes) + 1, tuple(lows), value))
            lows = []
    if lows:
        episodes.append(Episode(lows[0].lab, len(episodes) + 1, tuple(lows), None))
    return episodes


@dataclass(frozen=True)
class ToxicityEpisode:
    toxicity: Toxicity
    number: int  # 1 = first occurrence since ixazomib started (per series, see series_key)
    findings: tuple[ToxicityFinding, ...]
    worst_grade: int
    with_pain: bool
    started: datetime
    ended: datetime | None  # None: ongoing

    @property
    def term(self) -> str:
        return self.findings[0].term

    @property
    def attributed_to_ixazomib(self) -> bool | None:
        """True when any finding says so, False when every finding rules it out, else None."""
        stated = [f.attributed_to_ixazomib for f in self.findings]
        if any(a is True for a in stated):
            return True
        return False if stated and all(a is False for a in stated) else None


@dataclass(frozen=True)
class Step:
    """One dose-level change the label required, and why."""

    at: datetime  # the recovery
    onset: datetime  # when the episode began: the reduction is one level below the dose then
    rule: str
    drug: Drug
    why: str
    episode_number: int
    from_mg: Decimal | None = None
    to_mg: Decimal | None = None  # None: below the lowest level (discontinue)


@dataclass
class DoseCourse:
    started: datetime | None  # first ixazomib order; None: never had ixazomib
    start_dose: Decimal | None
    ixazomib_level: Decimal | None  # the level due now; None when the label says stop
    ixazomib_known: bool  # False when no ixazomib order gave a readable dose
    lenalidomide_level: Decimal | None
    steps: list[Step] = field(default_factory=list)
    last_ixazomib_order: MedicationOrder | None = None

    @property
    def ixazomib_discontinued(self) -> bool:
        return self.ixazomib_known and self.ixazomib_level is None

    def pending_steps(self, orders: list[MedicationOrder]) -> list[Step]:
        """Advice the prescriber has not yet acted on. A lenalidomide reduction is acted on
        when a later lenalidomide order (a draft signed now included) has that dose or less;
        any other step when an ixazomib order followed it."""
        last = self.last_ixazomib_order
        after = last.starts if last is not None and last.starts is not None else None

        def pending(step: Step) -> bool:
            if step.drug is Drug.LENALIDOMIDE and step.to_mg is not None:
                return not step_ordered(step, orders)
            return after is None or step.at > after

        return [s for s in self.steps if pending(s)]


def step_ordered(step: Step, orders: list[MedicationOrder]) -> bool:
    """Whether an order of the step's drug at its new level or lower followed it (an order
    without a start, a draft being signed, follows everything)."""
    return any(
        o.drug is step.drug
        and o.dose_mg is not None
        and step.to_mg is not None
        and o.dose_mg <= step.to_mg
        and (o.starts is None or o.starts >= step.at)
        for o in orders
    )


def _pain_near(facts: Facts, moment: datetime | None, window: timedelta) -> bool:
    """ "With pain": a neuropathic pain finding or a pain score > 0 near the moment."""
    if moment is None:
        return False
    for finding in facts.toxicities:
        is_pain = finding.toxicity is Toxicity.NEUROPATHIC_PAIN and (finding.grade or 1) > 0
        if not is_pain or finding.at is None:
            continue
        # Near the moment, or present since before it (a pain Condition still active).
        if abs(finding.at - moment) <= window or (finding.ongoing and finding.at <= moment):
            return True
    return any(
        score.value > 0 and abs(score.at - moment) <= window for score in facts.labs[Lab.PAIN_SCORE]
    )


def toxicity_episodes(
    facts: Facts, toxicity: Toxicity, at_least: int, since: datetime | None, pain_window: timedelta
) -> list[ToxicityEpisode]:
    """Episodes of a toxicity at or above a grade, from AdverseEvents and graded Observations.

    Each finding gives a span: an AdverseEvent from its date until now when ongoing (R4 has no
    resolution date: a resolved one is a moment); a run of graded Observations at or above
    the grade from the first of them to the first later grade <= 1 (a grade in between, say
    Grade 2 after Grade 3, keeps the episode open: the label waits for Grade 1). Spans of one
    series that overlap are one episode, so a rash re-recorded at a higher grade while the
    first record is still open is not a recurrence. The worst grade decides the Table 3 row.
    """
    by_series: dict[str, list[ToxicityFinding]] = {}
    for finding in facts.toxicities:
        if finding.toxicity is toxicity and finding.grade is not None:
            by_series.setdefault(series_key(finding), []).append(finding)

    # (start, end or None, findings) per series
    spans: dict[str, list[tuple[datetime, datetime | None, list[ToxicityFinding]]]] = {}
    for key, series in by_series.items():
        found = spans.setdefault(key, [])
        run: list[ToxicityFinding] = []
        for finding in sorted(series, key=lambda f: (f.at or facts.now, f.reference)):
            at, grade = finding.at or facts.now, finding.grade or 0
            if finding.reference.startswith("AdverseEvent/"):
                if grade >= at_least:
                    found.append((at, None if finding.ongoing else at, [finding]))
            elif grade >= at_least or (run and grade > 1):
                run.append(finding)
            elif run:
                found.append((run[0].at or facts.now, at, run))
                run = []
        if run:
            found.append((run[0].at or facts.now, None, run))

    episodes: list[ToxicityEpisode] = []
    for key_spans in spans.values():
        merged: list[tuple[datetime, datetime | None, list[ToxicityFinding]]] = []
        for begin, end, findings in sorted(key_spans, key=lambda s: s[0]):
            if merged and (merged[-1][1] is None or begin <= merged[-1][1]):
                last_begin, last_end, last_findings = merged[-1]
                joined_end = None if last_end is None or end is None else max(last_end, end)
                merged[-1] = (last_begin, joined_end, last_findings + findings)
            else:
                merged.append((begin, end, list(findings)))
        number = 0
        for begin, end, findings in merged:
            if since is not None and begin < since and (end is not None and end < since):
                continue  # over before ixazomib started
            number += 1
            episodes.append(
                ToxicityEpisode(
                    toxicity=toxicity,
                    number=number,
                    findings=tuple(findings),
                    worst_grade=max(f.grade or 0 for f in findings),
                    with_pain=any(_pain_near(facts, f.at, pain_window) for f in findings),
                    started=begin,
                    ended=end,
                )
            )
    return sorted(episodes, key=lambda e: (e.started, e.term))


def series_key(finding: ToxicityFinding) -> str:
    """Findings of one series: one per toxicity, and per term for "other" toxicities."""
    return finding.term if finding.toxicity is Toxicity.OTHER else finding.toxicity.value


def _ixazomib_orders(facts: Facts) -> list[MedicationOrder]:
    return [o for o in facts.history if o.drug is Drug.IXAZOMIB]


def dose_course(facts: Facts, pain_window: timedelta) -> DoseCourse:
    ixazomib_orders = _ixazomib_orders(facts)
    if not ixazomib_orders:
        return DoseCourse(None, None, None, False, None)
    started = ixazomib_orders[0].starts or facts.now
    dosed = [o for o in ixazomib_orders if o.dose_mg is not None]
    start_dose = dosed[0].dose_mg if dosed else None
    lenalidomide_orders = [
        o for o in facts.history if o.drug is Drug.LENALIDOMIDE and o.dose_mg is not None
    ]
    before_start = [o for o in lenalidomide_orders if (o.starts or started) < started]
    since_start = [o for o in lenalidomide_orders if (o.starts or started) >= started]

    # (time, kind, payload): orders first at equal times so a same-day recovery counts after.
    events: list[tuple[datetime, int, object]] = []
    for order in dosed:
        events.append((order.starts or started, 0, order))
    for order in since_start:
        events.append((order.starts or started, 0, order))
    for step_event in _reduction_events(facts, started, pain_window):
        events.append((step_event.at, 1, step_event))
    events.sort(key=lambda e: (e[0], e[1]))

    ixazomib: Decimal | None = None
    lenalidomide = before_start[-1].dose_mg if before_start else None
    # The levels after each event, to look up the dose an episode began on.
    levels: list[tuple[datetime, Decimal | None, Decimal | None]] = []
    steps: list[Step] = []
    for at, _, payload in events:
        if isinstance(payload, MedicationOrder):
            dose = payload.dose_mg
            if payload.drug is Drug.IXAZOMIB:
                ixazomib = dose if ixazomib is None or dose is None else min(ixazomib, dose)
            else:
                lenalidomide = (
                    dose if lenalidomide is None or dose is None else min(lenalidomide, dose)
                )
        else:
            assert isinstance(payload, Step)
            # The dose the episode began on: a lower dose ordered during the hold already is
            # the reduction, and is not reduced again.
            before = next((lv for lv in reversed(levels) if lv[0] <= payload.onset), None)
            if payload.drug is Drug.IXAZOMIB:
                if ixazomib is not None:  # None: already discontinued, nothing lower
                    at_onset = before[1] if before is not None else None
                    to = _one_level_lower(IXAZOMIB_LEVELS, ixazomib, at_onset)
                    steps.append(replace(payload, from_mg=at_onset or ixazomib, to_mg=to))
                    ixazomib = to
            elif lenalidomide is None:
                steps.append(payload)  # the lenalidomide dose is not known
            else:
                at_onset = before[2] if before is not None else None
                to = _one_level_lower(LENALIDOMIDE_LEVELS, lenalidomide, at_onset)
                steps.append(replace(payload, from_mg=at_onset or lenalidomide, to_mg=to))
                lenalidomide = to
        levels.append((at, ixazomib, lenalidomide))
    return DoseCourse(
        started=started,
        start_dose=start_dose,
        ixazomib_level=ixazomib,
        ixazomib_known=bool(dosed),
        lenalidomide_level=lenalidomide,
        steps=steps,
        last_ixazomib_order=ixazomib_orders[-1],
    )


def _one_level_lower(
    levels: tuple[Decimal, ...], now: Decimal, at_onset: Decimal | None
) -> Decimal | None:
    """One level below the dose an episode began on, and never above the dose now."""
    lower = next_lower(levels, now if at_onset is None else max(at_onset, now))
    return None if lower is None else min(lower, now)


def _reduction_events(facts: Facts, started: datetime, pain_window: timedelta) -> list[Step]:
    """Every recovery that owes a reduction, with the drug it lowers (levels filled in later)."""
    owed: list[Step] = []
    for lab, threshold in HOLD_THRESHOLDS.items():
        for episode in count_episodes(facts.labs[lab], threshold, started):
            if episode.recovery is None:
                continue
            drug = Drug.LENALIDOMIDE if episode.lowers_lenalidomide else Drug.IXAZOMIB
            why = (
                f"{lab.value} episode {episode.number} (lowest "
                f"{count_text(min(v.value for v in episode.lows))}/mm3) recovered "
                f"{episode.recovery.at:%Y-%m-%d}"
            )
            owed.append(
                Step(
                    episode.recovery.at,
                    episode.lows[0].at,
                    HOLD_RULES[lab],
                    drug,
                    why,
                    episode.number,
                )
            )
    for rash in toxicity_episodes(facts, Toxicity.RASH, 2, started, pain_window):
        if rash.ended is None or rash.worst_grade > 3:
            continue  # Grade 4 discontinues the regimen (shared.ongoing_toxicities)
        drug = Drug.LENALIDOMIDE if rash.number % 2 == 1 else Drug.IXAZOMIB
        why = f"rash Grade {rash.worst_grade} (occurrence {rash.number}) resolved"
        owed.append(Step(rash.ended, rash.started, "rash-grade-2-3", drug, why, rash.number))
    for neuropathy in toxicity_episodes(facts, Toxicity.NEUROPATHY, 2, started, pain_window):
        if neuropathy.ended is None or neuropathy.worst_grade > 3:
            continue
        if neuropathy.worst_grade == 3 or neuropathy.with_pain:
            why = f"peripheral neuropathy Grade {neuropathy.worst_grade}" + (
                " with pain" if neuropathy.with_pain and neuropathy.worst_grade == 2 else ""
            )
            owed.append(
                Step(
                    neuropathy.ended,
                    neuropathy.started,
                    "neuropathy-grade-2-pain-or-3",
                    Drug.IXAZOMIB,
                    why + " resolved",
                    neuropathy.number,
                )
            )
    for other in toxicity_episodes(facts, Toxicity.OTHER, 3, started, pain_window):
        if other.ended is None or other.worst_grade > 4 or other.attributed_to_ixazomib is not True:
            continue
        why = f"{other.term} Grade {other.worst_grade}, attributed to ixazomib"
        owed.append(
            Step(
                other.ended,
                other.started,
                "other-toxicity-grade-3-4",
                Drug.IXAZOMIB,
                why + ", resolved",
                other.number,
            )
        )
    return owed
