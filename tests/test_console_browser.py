"""The review console, seen in a real browser (Debian's Chromium driven by Playwright) on the
service as production runs it (gunicorn, auth on, ``CDS_CONSOLE=enabled``).

What a reviewer sees: each rule's example card with the summary the service itself gives and
the indicator's colour; the paste form answering a pasted request with its cards; the report's
bars as long as its numbers (cards and feedback made through the service's API first).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from browser import BrowserUnavailable, chromium
from console_data import Expected, call, scenario_request, seed_report
from live_server import LiveService, start_service
from playwright.sync_api import Browser, Page

from cds_service.fixtures import RECOMMENDATION_KEY

# The colours the console promises for the indicators (README, "Review console").
INDICATOR_COLOURS = {
    "info": "rgb(31, 111, 191)",
    "warning": "rgb(224, 134, 0)",
    "critical": "rgb(198, 40, 40)",
}
TIMEOUT_MS = 60_000  # the first /console page runs the bundled scenarios; the CPU is shared


@pytest.fixture(scope="module")
def service() -> Iterator[LiveService]:
    live = start_service(workers=1, env={"CDS_CONSOLE": "enabled"})
    yield live
    live.stop()


@pytest.fixture(scope="module")
def report_service() -> Iterator[tuple[LiveService, dict[str, Expected]]]:
    """A service of its own, whose audit trail holds only the cards seeded here."""
    live = start_service(workers=1, env={"CDS_CONSOLE": "enabled"})
    try:
        yield live, seed_report(live)
    finally:
        live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    try:
        with chromium() as found:
            yield found
    except BrowserUnavailable as error:
        if os.environ.get("CI"):
            pytest.fail(str(error), pytrace=False)
        pytest.skip(str(error))


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(TIMEOUT_MS)
    yield opened
    context.close()


def service_card(service: LiveService, scenario_id: str, rule: str) -> dict[str, Any]:
    service_id, body = scenario_request(scenario_id)
    cards = call(service, service_id, body)["cards"]
    return next(c for c in cards if c["extension"][RECOMMENDATION_KEY]["rule"] == rule)


@pytest.mark.parametrize("rule", ["hepatic-start-dose", "pregnancy", "cbc-missing"])
def test_each_rule_shows_its_example_card_as_the_ehr_draws_it(
    page: Page, service: LiveService, rule: str
) -> None:
    page.goto(f"{service.base_url}/console/")
    section = page.locator(f"section#rule-{rule}")
    # The card the service itself answers for the scenario the page names.
    truth = service_card(service, section.locator(".example-origin code").inner_text(), rule)
    card = section.locator("article.cds-card")
    assert card.locator(".summary").inner_text() == truth["summary"]
    colour = card.evaluate("el => getComputedStyle(el).borderLeftColor")
    assert colour == INDICATOR_COLOURS[truth["indicator"]]
    assert card.locator(".indicator").inner_text().lower() == truth["indicator"]
    # The markdown detail is rendered (bold "Advice:", the label section), not shown raw.
    assert card.locator(".detail strong", has_text="Advice:").count() == 1
    assert "**" not in card.locator(".detail").inner_text()
    # The rule's own text and section from the catalogue stand beside it.
    assert section.locator(".section").inner_text().startswith("Label section")
    assert section.locator(".rule-text").inner_text().strip()
    link = card.locator("a.link")
    assert link.inner_text() == truth["links"][0]["label"]
    if truth.get("suggestions"):
        assert card.locator("button.suggestion").inner_text() == truth["suggestions"][0]["label"]


def test_every_rule_of_the_catalogue_is_listed(page: Page, service: LiveService) -> None:
    from cds_service.rules.catalog import RULES

    page.goto(f"{service.base_url}/console/")
    shown = page.locator("section.rule h2").all_inner_texts()
    assert shown == [rule.id for rule in RULES]


def test_pasted_request_returns_its_cards(page: Page, service: LiveService) -> None:
    truth = service_card(service, "hep-moderate", "hepatic-start-dose")
    _, body = scenario_request("hep-moderate")
    page.goto(f"{service.base_url}/console/try")
    page.locator("textarea#request").fill(json.dumps(body))
    page.get_by_role("button", name="Show the cards").click()
    answer = page.locator("#answer")
    assert "HTTP 200" in answer.locator(".status").inner_text()
    card = answer.locator("article.cds-card", has_text=truth["summary"])
    assert card.locator(".summary").inner_text() == truth["summary"]
    colour = card.evaluate("el => getComputedStyle(el).borderLeftColor")
    assert colour == INDICATOR_COLOURS[truth["indicator"]]


def test_pasted_request_without_prefetch_is_not_fetched(page: Page, service: LiveService) -> None:
    _, body = scenario_request("hep-moderate")
    del body["prefetch"]
    # A FHIR server that would answer: the console must not call it (nothing listens there).
    body["fhirServer"] = f"{service.base_url}/not-a-fhir-server"
    body["fhirAuthorization"] = {
        "access_token": "t",
        "token_type": "Bearer",
        "expires_in": 60,
        "scope": "patient/*.read",
        "subject": "cds",
    }
    page.goto(f"{service.base_url}/console/try")
    page.locator("textarea#request").fill(json.dumps(body))
    page.get_by_role("button", name="Show the cards").click()
    problem = page.locator("#answer .problem")
    assert "HTTP 412" in problem.inner_text()
    assert "the request named no fhirServer" in problem.inner_text()
    assert "not-a-fhir-server" not in service.logs()


def test_report_bars_match_the_numbers(
    page: Page, report_service: tuple[LiveService, dict[str, Expected]]
) -> None:
    service, expected_report = report_service
    page.goto(f"{service.base_url}/console/report")
    per_count: list[float] = []
    for rule, counts in expected_report.items():
        row = page.locator(f"table.numbers tbody tr[data-rule='{rule}']")
        cells = row.locator("td").all_inner_texts()
        assert cells[1:5] == [
            str(counts.shown), str(counts.accepted), str(counts.overridden),
            str(counts.no_response),
        ], rule  # fmt: skip
        bar = page.locator(f"svg.outcome-chart g.rule-bar[data-rule='{rule}']")
        for outcome, count in (
            ("accepted", counts.accepted),
            ("overridden", counts.overridden),
            ("no-response", counts.no_response),
        ):
            segment = bar.locator(f"rect[data-outcome='{outcome}']")
            if count == 0:
                assert segment.count() == 0, (rule, outcome)
                continue
            box = segment.bounding_box()
            assert box is not None
            per_count.append(box["width"] / count)
    # One scale for every bar: each segment's width is its count times the same length.
    assert per_count
    assert max(per_count) - min(per_count) < 0.01 * max(per_count), per_count

    cbc = expected_report["cbc-missing"]
    reasons = page.locator("svg.reason-chart[data-rule='cbc-missing'] rect.reason")
    widths = [box["width"] for box in (r.bounding_box() for r in reasons.all()) if box]
    assert [int(r.get_attribute("data-count") or 0) for r in reasons.all()] == [
        count for _, count in cbc.reasons.most_common()
    ]
    top, second = (count for _, count in cbc.reasons.most_common())
    assert widths[1] / widths[0] == pytest.approx(second / top, rel=0.01)
