"""Label 2.2: a new cycle waits for ANC >= 1,000/mm3 and platelets >= 75,000/mm3 (hold), and
for non-hematologic toxicities back to Grade 1 or baseline (review: prescriber's discretion).

The counts are those of the Table 3 count rows (``CountRow.new_cycle_at_least``); the
toxicities those of the rows that declare ``new_cycle_gate``.
"""

from __future__ import annotations

from collections.abc import Iterable

from cds_service.rules.facts import Facts, MedicationOrder
from cds_service.rules.facts.labs import count_text
from cds_service.rules.prefetch_keys import ADVERSE_EVENTS, LABS, TOXICITY_GRADES
from cds_service.rules.settings import RuleSettings

from .. import shared
from ..episodes import series_key, toxicity_episodes
from ..model import Action, Decision, DrugAdvice, Indicator, Suggest, count_line, toxicity_line
from .rule import CountRow, Now, OrderCheck, ToxicityRow

RULE = OrderCheck(
    id="new-cycle-gate",
    section="2.2",
    reads="latest ANC and platelets before a new cycle (draft order); ongoing Grade 2 "
    "non-hematologic toxicities that no Table 3 row covers",
    label_text="A new cycle waits until ANC >= 1,000/mm3 and platelets >= 75,000/mm3 (hold); a "
    "Grade 2 non-hematologic toxicity not yet back to Grade 1 or baseline: review "
    "(prescriber's discretion).",
    needs=(LABS, ADVERSE_EVENTS, TOXICITY_GRADES),
)


def counts(
    facts: Facts,
    settings: RuleSettings,
    rows: Iterable[CountRow],
    drafts: list[MedicationOrder],
    cycle: tuple[bool, str],
) -> list[Decision]:
    """Hold a new cycle for a count below its new-cycle level (not below its Table 3 hold
    level: that row holds). Counts older than the CBC window are cbc-missing's."""
    zone = str(settings.default_timezone)
    new_cycle, cycle_line = cycle
    failures: list[str] = []
    lines: list[str] = []
    for row in rows:
        latest = facts.labs[row.lab][-1] if facts.labs[row.lab] else None
        if latest is None or facts.now - latest.at > settings.cbc_max_age:
            continue
        if new_cycle and row.hold_below <= latest.value < row.new_cycle_at_least:
            failures.append(
                f"{row.lab.value} {count_text(latest.value)}/mm3 < "
                f"{count_text(row.new_cycle_at_least)}"
            )
        lines.append(count_line(latest, zone))
    if not failures:
        return []
    stopped = shared.lenalidomide_stopped(facts)
    return [
        Decision(
            rule=RULE.id,
            indicator=Indicator.CRITICAL,
            summary=f"New cycle must wait: {'; '.join(failures)}"[:139],
            ixazomib=DrugAdvice(Action.HOLD),
            lenalidomide=shared.lenalidomide_hold(stopped),
            evidence=(*lines, cycle_line),
            notes=(
                "Start the cycle when ANC >= 1,000/mm3 and platelets >= 75,000/mm3.",
                shared.LENALIDOMIDE_NOT_ON_RECORD if stopped else "",
            ),
            suggest=Suggest.DELETE_DRAFT,
            targets=tuple(drafts),
        )
    ]


def toxicities(now: Now, rows: Iterable[ToxicityRow], cycle_line: str) -> list[Decision]:
    """A Grade 2 toxicity of a gating row, worse than its baseline and not held for by the
    row's own open episode (Grade 3-4): review before the new cycle."""
    decisions = []
    for row in rows:
        if not row.new_cycle_gate:
            continue
        facts, course = now.facts, now.course
        held = {
            series_key(e.findings[0])
            for e in toxicity_episodes(
                facts, row.toxicity, 3, course.started, now.settings.pain_score_max_age
            )
            if e.ended is None
        }
        ongoing = [
            f
            for f in facts.toxicities
            if f.toxicity is row.toxicity
            and f.ongoing
            and f.grade == 2
            and series_key(f) not in held
            and (shared.baseline_grade(facts, series_key(f), course) or 1) < 2  # above baseline
        ]
        if not ongoing:
            continue
        terms = ", ".join(sorted({f.term for f in ongoing}))
        decisions.append(
            Decision(
                rule=RULE.id,
                indicator=Indicator.WARNING,
                summary=f"New cycle: Grade 2 {terms[:70]} not yet back to Grade 1 or baseline",
                ixazomib=DrugAdvice(Action.REVIEW),
                evidence=(*(toxicity_line(f, now.zone) for f in ongoing), cycle_line),
                notes=(
                    "Before a new cycle the label asks for non-hematologic toxicities back to "
                    "baseline or Grade 1 or less, at the prescriber's discretion: decide whether "
                    "this cycle starts now or waits.",
                ),
            )
        )
    return decisions
