"""order-sign / order-select: order errors, product codes, medicationReference variants."""

from __future__ import annotations

from decimal import Decimal

from cds_service.rules.inputs import HOOK_ORDER_SELECT, PatientRecord

from .builders import (
    IXAZOMIB,
    IXAZOMIB_4MG,
    LENALIDOMIDE,
    NINLARO_4MG,
    RXNORM,
    concept,
    one,
    order,
    recommendation,
    record,
    rules_of,
    sign,
)

ON_IXAZOMIB = [order(status="active", days_ago=30, dose=4)]


def _update(card: dict) -> dict:  # type: ignore[type-arg]
    (suggestion,) = card["suggestions"]
    (action,) = suggestion["actions"]
    assert action["type"] == "update"
    return action["resource"]  # type: ignore[no-any-return]


def test_labelled_order_on_clean_record_gives_no_cards() -> None:
    assert sign(order(dose=4), record(history=ON_IXAZOMIB)) == []


def test_hook_for_another_drug_returns_nothing() -> None:
    assert sign(order(code=LENALIDOMIDE, dose=25), record(history=ON_IXAZOMIB)) == []


def test_order_select_judges_only_the_selection() -> None:
    overdose = order(dose=8, id="bad")
    fine = order(dose=4, id="fine")
    rec = record(history=ON_IXAZOMIB)
    cards = sign(
        [overdose, fine], rec, hook=HOOK_ORDER_SELECT, selections=["MedicationRequest/fine"]
    )
    assert cards == []
    cards = sign(
        [overdose, fine], rec, hook=HOOK_ORDER_SELECT, selections=["MedicationRequest/bad"]
    )
    assert rules_of(cards) == ["overdose"]


def test_overdose_by_dose_is_critical_and_corrected_to_the_dose_due() -> None:
    card = one(sign(order(dose=8, id="d1"), record(history=ON_IXAZOMIB)), "overdose")
    assert card["indicator"] == "critical"
    assert recommendation(card)["ixazomib"] == {"action": "correct-dose", "doseMg": 4}
    assert _update(card)["id"] == "d1"


def test_overdose_by_frequency_also_fixes_the_timing() -> None:
    twice_weekly = {"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}}
    card = one(sign(order(dose=4, timing=twice_weekly), record(history=ON_IXAZOMIB)), "overdose")
    timing = _update(card)["dosageInstruction"][0]["timing"]["repeat"]
    assert (timing["frequency"], timing["period"], timing["periodUnit"]) == (1, 1, "wk")


def test_daily_timing_code_is_an_overdose() -> None:
    daily = {"code": concept("http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "QD")}
    assert rules_of(sign(order(dose="2.3", timing=daily), record(history=ON_IXAZOMIB))) == [
        "overdose"
    ]


def test_three_doses_per_28_days_is_not_an_overdose() -> None:
    cycle = {"repeat": {"frequency": 3, "period": 28, "periodUnit": "d"}}
    assert sign(order(dose=4, timing=cycle), record(history=ON_IXAZOMIB)) == []


def test_dose_not_labelled() -> None:
    card = one(sign(order(dose="3.5"), record(history=ON_IXAZOMIB)), "dose-not-labelled")
    assert recommendation(card)["ixazomib"] == {"action": "correct-dose", "doseMg": 4}
    assert card["indicator"] == "warning"


def test_dose_in_micrograms_and_grams_is_read_exactly() -> None:
    assert sign(order(dose=4000, unit="ug"), record(history=ON_IXAZOMIB)) == []
    assert sign(order(dose="0.004", unit="g"), record(history=ON_IXAZOMIB)) == []


def test_dose_in_capsules_uses_the_product_strength() -> None:
    draft = order(code=IXAZOMIB_4MG, dose=2, unit="{capsule}")
    assert recommendation(one(sign(draft, record(history=ON_IXAZOMIB)), "overdose"))


def test_unreadable_dose_unit_is_reported_not_guessed() -> None:
    card = one(
        sign(order(dose=1, unit="tablet"), record(history=ON_IXAZOMIB)), "data-uninterpretable"
    )
    assert recommendation(card)["ixazomib"]["action"] == "review"
    assert "tablet" in card["detail"]


def test_product_code_switched_in_codeable_concept() -> None:
    rec = record(history=[order(status="active", days_ago=30, dose=3)])
    card = one(sign(order(code=NINLARO_4MG, dose=4), rec), "dose-level-due")
    resource = _update(card)
    assert resource["medicationCodeableConcept"]["coding"][0]["code"] == "1723767"  # Ninlaro 3 mg


def test_product_code_switched_in_contained_medication() -> None:
    medication = {
        "contained": [
            {"resourceType": "Medication", "id": "m1", "code": concept(RXNORM, IXAZOMIB_4MG)}
        ],
        "medicationReference": {"reference": "#m1"},
    }
    rec = record(history=[order(status="active", days_ago=30, dose=3)])
    card = one(sign(order(medication=medication, dose=4), rec), "dose-level-due")
    resource = _update(card)
    assert resource["contained"][0]["code"]["coding"][0]["code"] == "1723765"  # generic 3 mg
    assert resource["medicationReference"] == {"reference": "#m1"}


def test_medication_reference_resolved_from_the_record() -> None:
    medication = {"medicationReference": {"reference": "Medication/ninlaro4"}}
    rec = record(history=ON_IXAZOMIB)
    rec.medications["Medication/ninlaro4"] = {
        "resourceType": "Medication",
        "id": "ninlaro4",
        "code": concept(RXNORM, NINLARO_4MG),
    }
    card = one(sign(order(medication=medication, dose=8), rec), "overdose")
    resource = _update(card)
    assert resource["medicationCodeableConcept"]["coding"][0]["code"] == NINLARO_4MG
    assert "medicationReference" not in resource


def test_unresolved_medication_reference_is_said_not_passed() -> None:
    medication = {"medicationReference": {"reference": "Medication/unknown"}}
    rec = record(history=ON_IXAZOMIB)
    rec.unavailable["medications"] = "could not read Medication/unknown"
    card = one(sign(order(medication=medication, dose=8, id="u"), rec), "data-unavailable")
    assert recommendation(card)["ixazomib"] == {"action": "review"}
    assert "MedicationRequest/u" in card["detail"]
    assert "could not read Medication/unknown" in card["detail"]


def test_history_orders_by_reference_count_as_ixazomib_history() -> None:
    medication = {"medicationReference": {"reference": "Medication/ixa"}}
    history = [order(medication=medication, status="active", days_ago=30, dose=3)]
    rec = PatientRecord(resources=record(history=history).resources)
    rec.medications["Medication/ixa"] = {
        "resourceType": "Medication",
        "id": "ixa",
        "code": concept(RXNORM, IXAZOMIB),
    }
    card = one(sign(order(dose=4), rec), "dose-level-due")
    assert recommendation(card)["ixazomib"] == {"action": "correct-dose", "doseMg": 3}


def test_malformed_ixazomib_draft_is_named_not_crashing() -> None:
    draft = order(dose=4)
    draft["status"] = 42
    card = one(sign(draft, record(history=ON_IXAZOMIB)), "data-uninterpretable")
    assert draft["id"] in card["detail"]


def test_doses_are_decimal_exact() -> None:
    card = one(
        sign(order(dose=8), record(history=[order(status="active", days_ago=9, dose="2.3")])),
        "overdose",
    )
    assert recommendation(card)["ixazomib"]["doseMg"] == Decimal("2.3")
