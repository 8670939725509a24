"""How a service response is checked against a scenario's expected recommendations.

One check for the test suite (tests/test_scenarios.py and the integration tests) and for
``ixazomib-cds verify``: every expected recommendation matched by a different card, no
restrictive card the scenario does not allow, and at order hooks a dose change carried as one
``update`` of the whole draft. ``fhir_fixtures/README.md`` describes the matching.
"""

from __future__ import annotations

import json
from typing import Any

from cds_service.fixtures import RECOMMENDATION_KEY, ExpectedRecommendation, Scenario

DOSE_CHANGES = {"reduce", "start-reduced", "correct-dose"}
ORDER_SERVICES = {"ixazomib-order-sign", "ixazomib-order-select"}


def describe_cards(cards: list[dict[str, Any]]) -> str:
    lines = []
    for card in cards:
        extension = (card.get("extension") or {}).get(RECOMMENDATION_KEY)
        lines.append(f"  - [{card.get('indicator')}] {card.get('summary')!r} {extension}")
    return "\n".join(lines) or "  (no cards)"


def _check_dose_suggestion(
    scenario: Scenario, card: dict[str, Any], expected: ExpectedRecommendation
) -> list[str]:
    """Contract: at order hooks a dose change is one ``update`` of the whole draft."""
    if scenario.service not in ORDER_SERVICES or expected.ixazomib_dose_mg is None:
        return []
    recommendation = card["extension"][RECOMMENDATION_KEY]
    if recommendation.get("ixazomib", {}).get("action") not in DOSE_CHANGES:
        return []
    draft_ids = {
        r["id"] for r in scenario.context_resources() if r["resourceType"] == "MedicationRequest"
    }
    for suggestion in card.get("suggestions") or []:
        for action in suggestion.get("actions") or []:
            resource = action.get("resource") or {}
            if action.get("type") != "update" or resource.get("id") not in draft_ids:
                continue
            dose = resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
            if format(float(dose["value"]), "g") != expected.ixazomib_dose_mg:
                return [f"update suggestion carries {dose}, expected {expected.ixazomib_dose_mg}"]
            if expected.suggested_product_code is not None:
                codes = {
                    c.get("code")
                    for c in (resource.get("medicationCodeableConcept") or {}).get("coding", [])
                }
                if expected.suggested_product_code not in codes:
                    return [
                        f"update suggestion product codes {codes}, expected "
                        f"{expected.suggested_product_code}"
                    ]
            return []
    return [f"no update suggestion of the draft for card {card.get('summary')!r}"]


def check(scenario: Scenario, response_json: dict[str, Any]) -> list[str]:
    cards = [c for c in response_json.get("cards", []) if isinstance(c, dict)]
    advised = [
        c for c in cards if isinstance((c.get("extension") or {}).get(RECOMMENDATION_KEY), dict)
    ]
    problems: list[str] = []
    if scenario.expected_cards is not None:
        wanted = sorted(str(c.get("indicator")) for c in scenario.expected_cards)
        got = sorted(str(c.get("indicator")) for c in cards)
        if wanted != got:
            problems.append(f"cards by indicator: expected {wanted}, got {got}")
    unused = list(advised)
    for expected in scenario.expected:
        card = next(
            (c for c in unused if expected.matches(c["extension"][RECOMMENDATION_KEY])), None
        )
        if card is None:
            problems.append(f"missing {expected.describe()}")
            continue
        unused.remove(card)
        problems += _check_dose_suggestion(scenario, card, expected)
    for card in unused:
        recommendation = card["extension"][RECOMMENDATION_KEY]
        if any(optional.matches(recommendation) for optional in scenario.optional):
            continue
        action = (recommendation.get("ixazomib") or {}).get("action")
        if scenario.allow_extra_review and action == "review":
            continue
        problems.append(f"unexpected {json.dumps(recommendation, sort_keys=True)}")
    return problems
