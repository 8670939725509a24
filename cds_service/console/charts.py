"""The rule report as bar charts: the geometry the console's SVG templates draw.

Bars are drawn to one scale for the whole chart (the rule with the most cards fills the
width), so rules can be compared by eye; each bar is split into accepted, overridden and no
response. The numbers are the store's report (``Store.rule_report``), the same the
``ixazomib-cds report`` table prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cds_service.store.models import UNKNOWN_RULE, RuleStats

BAR_WIDTH = 360  # px: the longest bar
REASON_BAR_WIDTH = 240
TOP_REASONS = 3
OUTCOMES = (  # (outcome, label, colour)
    ("accepted", "Accepted", "#2e7d32"),
    ("overridden", "Overridden", "#c62828"),
    ("no-response", "No response", "#9e9e9e"),
)


@dataclass(frozen=True)
class Segment:
    outcome: str
    label: str
    colour: str
    count: int
    x: float
    width: float


@dataclass(frozen=True)
class ReasonBar:
    reason: str
    count: int
    percent: str
    width: float


@dataclass(frozen=True)
class RuleRow:
    rule: str
    shown: int
    accepted: int
    overridden: int
    no_response: int
    accepted_percent: str
    overridden_percent: str
    segments: tuple[Segment, ...]
    reasons: tuple[ReasonBar, ...]
    other_reasons: int


def report_rows(stats: Sequence[RuleStats]) -> list[RuleRow]:
    totals = [s.accepted + s.overridden + s.no_response for s in stats]
    longest = max(totals, default=0)
    scale = BAR_WIDTH / longest if longest else 0.0
    return [_row(s, scale) for s in stats]


def _row(stats: RuleStats, scale: float) -> RuleRow:
    counts = {
        "accepted": stats.accepted,
        "overridden": stats.overridden,
        "no-response": stats.no_response,
    }
    segments = []
    x = 0.0
    for outcome, label, colour in OUTCOMES:
        width = counts[outcome] * scale
        segments.append(Segment(outcome, label, colour, counts[outcome], x, width))
        x += width
    top = stats.override_reasons[:TOP_REASONS]
    most = max((count for _, count in top), default=0)
    reasons = tuple(
        ReasonBar(
            reason,
            count,
            percent(count, stats.overridden),
            REASON_BAR_WIDTH * count / most if most else 0.0,
        )
        for reason, count in top
    )
    # 'unknown' mixes cards without a rule with feedback on cards never audited: no ratio.
    whole = 0 if stats.rule == UNKNOWN_RULE else stats.shown
    return RuleRow(
        rule=stats.rule,
        shown=stats.shown,
        accepted=stats.accepted,
        overridden=stats.overridden,
        no_response=stats.no_response,
        accepted_percent=percent(stats.accepted, whole),
        overridden_percent=percent(stats.overridden, whole),
        segments=tuple(segments),
        reasons=reasons,
        other_reasons=sum(count for _, count in stats.override_reasons[TOP_REASONS:]),
    )


def percent(part: int, whole: int) -> str:
    """'-' when there is nothing to divide by."""
    return f"{100 * part / whole:.0f}%" if whole else "-"
