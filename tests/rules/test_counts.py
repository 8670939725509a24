"""ANC and platelets: exact thresholds, unit variants, stale or missing CBC, new-cycle gate."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from cds_service.rules import RuleSettings

from .builders import (
    ANC,
    PLATELETS,
    anc,
    lab,
    one,
    order,
    platelets,
    recommendation,
    record,
    rules_of,
    sign,
)

ON_IXAZOMIB = [order(status="active", days_ago=30, dose=4)]


def _sign_with(labs: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return sign(order(dose=4, id="draft"), record(history=ON_IXAZOMIB, labs=labs))


def test_anc_exactly_500_as_0_5_giga_per_litre_does_not_fire() -> None:
    cards = _sign_with([lab(ANC, "0.5", "10*9/L", 1), platelets(200000, 1)])
    assert "anc-below-500" not in rules_of(cards)


def test_anc_499_fires_hold_of_both_with_delete_of_the_draft() -> None:
    card = one(_sign_with([anc(499, 1), platelets(200000, 1)]), "anc-below-500")
    assert card["indicator"] == "critical"
    rec = recommendation(card)
    assert rec["ixazomib"] == {"action": "hold"}
    assert rec["lenalidomide"] == {"action": "hold"}
    (action,) = card["suggestions"][0]["actions"]
    assert action == {
        "type": "delete",
        "description": action["description"],
        "resourceId": "MedicationRequest/draft",
    }


def test_platelets_29999_fires_and_30000_does_not() -> None:
    assert "platelets-below-30k" in rules_of(_sign_with([anc(2000, 1), platelets(29999, 1)]))
    assert "platelets-below-30k" not in rules_of(_sign_with([anc(2000, 1), platelets(30000, 1)]))


@pytest.mark.parametrize(
    ("value", "unit", "system"),
    [
        ("29.999", "10*3/uL", "http://unitsofmeasure.org"),
        ("29.999", "10*9/L", "http://unitsofmeasure.org"),
        ("29999", "/uL", "http://unitsofmeasure.org"),
        ("29999", "/mm3", "http://unitsofmeasure.org"),
        ("29.999", "K/uL", None),
        ("29.999", "x10E3/uL", None),
        ("29.999", "10^3/uL", None),
        ("29.999", "thou/uL", None),
        ("29.999", "10*3/µL", None),
    ],
)
def test_platelet_unit_variants(value: str, unit: str, system: str | None) -> None:
    cards = _sign_with([anc(2000, 1), lab(PLATELETS, value, unit, 1, system=system)])
    assert "platelets-below-30k" in rules_of(cards)


def test_kelvin_per_microlitre_as_a_ucum_code_is_not_read() -> None:
    cards = _sign_with(
        [anc(2000, 1), lab(PLATELETS, "25", "K/uL", 1, system="http://unitsofmeasure.org")]
    )
    assert "platelets-below-30k" not in rules_of(cards)
    assert "K/uL" in one(cards, "data-uninterpretable")["detail"]


def test_unknown_count_unit_is_reported_not_guessed() -> None:
    cards = _sign_with([anc(2000, 1), lab(PLATELETS, "20", "cells/hpf", 1, system=None)])
    card = one(cards, "data-uninterpretable")
    assert "cells/hpf" in card["detail"]
    assert "platelets-below-30k" not in rules_of(cards)
    # The unreadable count leaves no platelet count: the CBC is missing too.
    assert "cbc-missing" in rules_of(cards)


def test_kelvin_per_microlitre_is_not_accepted_for_chemistry() -> None:
    cards = sign(
        order(dose=4),
        record(labs=[anc(2000, 1), platelets(200000, 1), lab("1975-2", "2", "K/uL", 1)]),
    )
    assert "data-uninterpretable" in rules_of(cards)


def test_comparator_result_is_a_bound_not_a_value() -> None:
    # "<0.8 10*3/uL" is below 500/mm3 or not: a bound the label's thresholds cannot decide.
    low = anc(800, 1)
    low["valueQuantity"]["comparator"] = "<"
    assert "data-uninterpretable" in rules_of(_sign_with([low, platelets(200000, 1)]))


def test_a_bound_below_every_threshold_is_below_them() -> None:
    # "<0.1 10*3/uL" is below 500/mm3 whatever the count is (issue 12): the hold.
    low = anc(100, 1)
    low["valueQuantity"]["comparator"] = "<"
    cards = _sign_with([low, platelets(200000, 1)])
    assert rules_of(cards) == ["anc-below-500"]
    assert "<0.1 10*3/uL" in one(cards, "anc-below-500")["detail"]


def test_stale_cbc_counts_as_missing() -> None:
    card = one(_sign_with([anc(2000, 8), platelets(200000, 8)]), "cbc-missing")
    assert recommendation(card)["ixazomib"] == {"action": "review"}
    assert "older than 7 days" in card["detail"]


def test_cbc_window_is_a_setting() -> None:
    labs = [anc(2000, 8), platelets(200000, 8)]
    settings = RuleSettings(cbc_max_age=timedelta(days=10))
    assert sign(order(dose=4), record(history=ON_IXAZOMIB, labs=labs), settings) == []


def test_no_cbc_at_all_is_missing() -> None:
    card = one(_sign_with([]), "cbc-missing")
    assert "no ANC result" in card["detail"]
    assert "no platelets result" in card["detail"]


def test_preliminary_and_cancelled_results_do_not_count() -> None:
    """None of them holds; the preliminary one, newer than the final, is named for review (a
    cancelled or entered-in-error result never was one)."""
    labs = [
        anc(300, 1, status="preliminary", id="prelim"),
        anc(300, 1, status="cancelled", id="cancelled"),
        anc(300, 1, status="entered-in-error", id="eie"),
        anc(2000, 2),
        platelets(200000, 2),
    ]
    cards = _sign_with(labs)
    assert rules_of(cards) == ["data-uninterpretable"]
    assert recommendation(cards[0])["ixazomib"] == {"action": "review"}
    assert "Observation/prelim" in cards[0]["detail"]
    assert "status preliminary" in cards[0]["detail"]
    assert "Observation/cancelled" not in cards[0]["detail"]
    assert "Observation/eie" not in cards[0]["detail"]


def test_a_preliminary_count_older_than_the_final_one_is_not_named() -> None:
    labs = [anc(300, 3, status="preliminary"), anc(2000, 1), platelets(200000, 1)]
    assert _sign_with(labs) == []


def test_new_cycle_gate_anc_below_1000() -> None:
    card = one(_sign_with([anc(999, 1), platelets(200000, 1)]), "new-cycle-gate")
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    assert card["suggestions"][0]["actions"][0]["type"] == "delete"


def test_new_cycle_gate_platelets_below_75000_and_boundary() -> None:
    assert "new-cycle-gate" in rules_of(_sign_with([anc(1000, 1), platelets(74999, 1)]))
    assert _sign_with([anc(1000, 1), platelets(75000, 1)]) == []


def test_new_cycle_gate_applies_to_the_first_order_too() -> None:
    cards = sign(order(dose=4), record(labs=[anc(800, 1), platelets(200000, 1)]))
    assert "new-cycle-gate" in rules_of(cards)


def test_hold_wins_over_gate_for_the_same_count() -> None:
    assert rules_of(_sign_with([anc(400, 1), platelets(200000, 1)])) == ["anc-below-500"]


def test_zone_less_dates_are_read_in_the_default_zone_and_said() -> None:
    # Written without a zone: read in UTC it is 7 days and 3 hours old (stale)...
    stale_in_utc = "2025-02-22T09:00:00"
    labs = [
        lab(ANC, "2", "10*3/uL", 0, effective=stale_in_utc),
        lab(PLATELETS, "200", "10*3/uL", 0, effective=stale_in_utc),
    ]
    card = one(_sign_with(labs), "cbc-missing")
    assert "without a time zone; read as UTC" in card["detail"]
    # ...but read in UTC-05:00 it is 14:00 UTC, within the 7 days.
    settings = RuleSettings(default_timezone=ZoneInfo("America/New_York"))
    rec = record(history=ON_IXAZOMIB, labs=labs)
    assert sign(order(dose=4), rec, settings) == []
