"""Defects an independent audit found in the facts and card layers, each with what the
clinician would see once it is fixed."""

from __future__ import annotations

from decimal import Decimal

from .builders import (
    good_cbc,
    lab,
    one,
    order,
    recommendation,
    record,
    rules_of,
    sign,
)

BILIRUBIN = "1975-2"


def _update(card: dict) -> dict:  # type: ignore[type-arg]
    (suggestion,) = card["suggestions"]
    (action,) = suggestion["actions"]
    assert action["type"] == "update"
    return action["resource"]  # type: ignore[no-any-return]


# --- 1. a cancelled order is not treatment history ---------------------------------------------


def test_cancelled_ixazomib_order_does_not_count_as_started() -> None:
    # FHIR R4: cancelled = withdrawn before any dose was taken. The patient is still starting
    # ixazomib, so the hepatic starting dose applies.
    cancelled = order(status="cancelled", days_ago=10, dose=4, id="withdrawn")
    bilirubin = lab(BILIRUBIN, "2.5", "mg/dL", 2, high={"value": Decimal("1.2"), "unit": "mg/dL"})
    cards = sign(
        order(dose=4, id="new"), record(history=[cancelled], labs=[*good_cbc(), bilirubin])
    )
    card = one(cards, "hepatic-start-dose")
    assert recommendation(card)["ixazomib"] == {"action": "start-reduced", "doseMg": 3}
    assert "2.08" in card["detail"]  # 2.5 / 1.2 x ULN
    resource = _update(card)
    assert resource["id"] == "new"
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 3
    assert "dose-level-due" not in rules_of(cards)
