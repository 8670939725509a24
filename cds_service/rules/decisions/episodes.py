"""The episodes the label counts: runs of low counts, toxicity episodes, and the dose steps
their recoveries owe.

Episodes count from the day ixazomib was first started; each Table 3 row has its own
alternation, as each row describes its own recurrences. The rows (``decisions.label``) say
which episodes owe which step; ``history.dose_course`` replays the steps with the orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from cds_service.rules.facts import Drug, Facts, Lab, LabValue, MedicationOrder
from cds_service.rules.facts.clinical import Toxicity, ToxicityFinding


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


def alternating_drug(occurrence: int) -> Drug:
    """Table 3's alternation (platelets, ANC, rash Grade 2-3): the recovery of the 1st, 3rd...
    occurrence lowers lenalidomide, of the 2nd, 4th... ixazomib."""
    return Drug.LENALIDOMIDE if occurrence % 2 == 1 else Drug.IXAZOMIB


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
