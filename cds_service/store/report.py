"""The rule report as a plain-text table for the pharmacy and therapeutics committee."""

from __future__ import annotations

from collections.abc import Sequence

from cds_service.store.models import UNKNOWN_RULE, RuleStats

TOP_REASONS = 3
HEADERS = ("Rule", "Shown", "Accepted", "Overridden", "No response", "Accepted %", "Overridden %")

EXPLANATION = """\
Each card counts once, by the latest outcome the EHR reported for it. Percentages are of cards
shown; 'No response': shown but no feedback received (the EHR sends none for ignored cards).
Rule 'unknown': feedback on cards missing from the audit trail, and cards without a rule; it
has no percentages and is left out of the percentages of 'All rules'."""


def format_report(stats: Sequence[RuleStats]) -> str:
    """Per rule: shown / accepted / overridden / acceptance %, then the top override reasons."""
    if not stats:
        return "No cards have been shown and no feedback has been received in this period.\n"
    rows = [_row(s) for s in stats]
    audited = [s for s in stats if s.rule != UNKNOWN_RULE]
    audited_shown = sum(s.shown for s in audited)
    total_row = (
        "All rules",
        str(sum(s.shown for s in stats)),
        str(sum(s.accepted for s in stats)),
        str(sum(s.overridden for s in stats)),
        str(sum(s.no_response for s in stats)),
        _percent(sum(s.accepted for s in audited), audited_shown),
        _percent(sum(s.overridden for s in audited), audited_shown),
    )
    widths = [max(len(r[i]) for r in [HEADERS, *rows, total_row]) for i in range(len(HEADERS))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = ["Ixazomib CDS: rule report", "", line(HEADERS), rule]
    out += [line(r) for r in rows]
    out += [rule, line(total_row), "", EXPLANATION]

    reasons = [s for s in stats if s.override_reasons]
    if reasons:
        out += ["", f"Top override reasons (up to {TOP_REASONS} per rule)"]
        for s in reasons:
            out.append(f"  {s.rule}:")
            for reason, count in s.override_reasons[:TOP_REASONS]:
                out.append(f"    {count:>5}  {_percent(count, s.overridden):>5}  {reason}")
            others = sum(count for _, count in s.override_reasons[TOP_REASONS:])
            if others:
                out.append(f"    {others:>5}  {_percent(others, s.overridden):>5}  (other reasons)")
    return "\n".join(out) + "\n"


def _row(s: RuleStats) -> tuple[str, ...]:
    # 'unknown' mixes cards without a rule with feedback on cards never audited: no ratio.
    whole = 0 if s.rule == UNKNOWN_RULE else s.shown
    return (
        s.rule,
        str(s.shown),
        str(s.accepted),
        str(s.overridden),
        str(s.no_response),
        _percent(s.accepted, whole),
        _percent(s.overridden, whole),
    )


def _percent(part: int, whole: int) -> str:
    """'-' when there is nothing to divide by (feedback on cards not in the audit trail)."""
    return f"{100 * part / whole:.0f}%" if whole else "-"
