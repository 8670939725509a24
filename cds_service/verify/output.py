"""What ``ixazomib-cds verify`` hands back: a plain-text table and a JUnit XML file."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from cds_service.verify.runner import Outcome, VerifyResult

HEADERS = ("scenario", "path", "expected", "got", "result")


def format_table(outcomes: Sequence[Outcome]) -> str:
    """One row per scenario and path, then each failure's or skip's reasons."""
    rows = [(o.scenario, o.path, o.expected, o.got, o.status) for o in outcomes]
    widths = [max(len(r[i]) for r in [HEADERS, *rows]) for i in range(len(HEADERS))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(HEADERS), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]
    failed = [o for o in outcomes if o.passed is False]
    if failed:
        out += ["", "Failures:"]
        for outcome in failed:
            out.append(f"  {outcome.scenario} ({outcome.path}):")
            out += [f"    - {problem}" for problem in outcome.problems]
    return "\n".join(out) + "\n"


def summary(result: VerifyResult) -> str:
    counts = {status: 0 for status in ("pass", "FAIL", "skip")}
    for outcome in result.outcomes:
        counts[outcome.status] += 1
    return (
        f"{counts['pass']} passed, {counts['FAIL']} failed, {counts['skip']} skipped "
        f"(run {result.run.code}: {result.loaded} resources loaded, tagged {result.run.tag_search}"
        + (f"; {result.deleted} deleted" if result.deleted else "")
        + ")"
    )


def write_junit(result: VerifyResult, path: Path | str) -> None:
    """A JUnit XML report: one test case per scenario and path (``verify.prefetch``,
    ``verify.fetch``), the problems as the failure text, skips with their reason."""
    outcomes = result.outcomes
    suite = ET.Element(
        "testsuite",
        name="ixazomib-cds verify",
        tests=str(len(outcomes)),
        failures=str(sum(o.passed is False for o in outcomes)),
        skipped=str(sum(o.passed is None for o in outcomes)),
        errors="0",
        time=f"{sum(o.seconds for o in outcomes):.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="run", value=result.run.code)
    for outcome in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"verify.{outcome.path}",
            name=outcome.scenario,
            time=f"{outcome.seconds:.3f}",
        )
        if outcome.passed is None:
            ET.SubElement(case, "skipped", message="; ".join(outcome.problems))
        elif not outcome.passed:
            failure = ET.SubElement(
                case, "failure", message=(outcome.problems or ["failed"])[0][:300]
            )
            failure.text = f"expected: {outcome.expected}\ngot: {outcome.got}\n" + "\n".join(
                outcome.problems
            )
        ET.SubElement(case, "system-out").text = f"expected: {outcome.expected}\ngot: {outcome.got}"
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
