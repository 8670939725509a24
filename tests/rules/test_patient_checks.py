"""Pregnancy, interactions, hypersensitivity, unavailable and malformed data."""

from __future__ import annotations

from cds_service.rules.inputs import PatientRecord

from .builders import (
    LOINC,
    RXNORM,
    SNOMED,
    concept,
    good_cbc,
    lab_result,
    one,
    order,
    recommendation,
    record,
    rules_of,
    sign,
    when,
)

HISTORY = [order(status="active", days_ago=60, dose=4, id="ixa")]


def pregnancy_status(pregnant: bool, days_ago: float = 1, id: str = "preg") -> dict:  # type: ignore[type-arg]
    return {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": concept(LOINC, "82810-3"),
        "effectiveDateTime": when(days_ago),
        "valueCodeableConcept": concept(SNOMED, "77386006" if pregnant else "60001007"),
    }


def test_pregnancy_stops_the_regimen() -> None:
    rec = record(history=HISTORY, labs=[*good_cbc(), pregnancy_status(True)])
    card = one(sign(order(dose=4, id="d"), rec), "pregnancy")
    assert card["indicator"] == "critical"
    assert recommendation(card) == {
        "rule": "pregnancy",
        "ixazomib": {"action": "discontinue"},
        "lenalidomide": {"action": "discontinue"},
    }
    assert card["suggestions"][0]["actions"][0]["resourceId"] == "MedicationRequest/d"


def test_later_negative_pregnancy_status_wins() -> None:
    labs = [*good_cbc(), pregnancy_status(True, 30, "a"), pregnancy_status(False, 2, "b")]
    assert sign(order(dose=4), record(history=HISTORY, labs=labs)) == []


def test_pregnancy_at_lab_hook() -> None:
    cards = lab_result([pregnancy_status(True, 0)], record(history=HISTORY))
    assert rules_of(cards) == ["pregnancy"]


def test_strong_cyp3a_inducer_by_code_and_by_name() -> None:
    rifampin = order(code="9384", status="active", dose=600, days_ago=5)
    card = one(sign(order(dose=4), record(history=[*HISTORY, rifampin])), "strong-cyp3a-inducer")
    assert recommendation(card)["ixazomib"] == {"action": "review"}
    herbal = order(
        status="active",
        dose=300,
        days_ago=5,
        medication={"medicationCodeableConcept": {"text": "St John's Wort extract"}},
    )
    assert "strong-cyp3a-inducer" in rules_of(
        sign(order(dose=4), record(history=[*HISTORY, herbal]))
    )
    stopped = order(code="9384", status="stopped", dose=600, days_ago=50)
    assert sign(order(dose=4), record(history=[*HISTORY, stopped])) == []


def test_inducer_ordered_with_the_ixazomib_draft() -> None:
    drafts = [order(dose=4), order(code="2002", dose=200)]
    assert rules_of(sign(drafts, record(history=HISTORY))) == ["strong-cyp3a-inducer"]


def test_hypersensitivity_to_ixazomib() -> None:
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "al",
        "patient": {"reference": "Patient/p1"},
        "code": concept(RXNORM, "1723735", "ixazomib"),
    }
    card = one(
        sign(order(dose=4), record(history=HISTORY, allergies=[allergy])), "hypersensitivity"
    )
    assert "AllergyIntolerance/al" in card["detail"]
    refuted = {
        **allergy,
        "verificationStatus": concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "refuted"
        ),
    }
    assert sign(order(dose=4), record(history=HISTORY, allergies=[refuted])) == []


def test_unavailable_data_is_named() -> None:
    rec = record(history=HISTORY)
    rec = PatientRecord(
        resources={k: v for k, v in rec.resources.items() if k != "adverseEvents"},
        unavailable={"adverseEvents": "the FHIR server answered 500"},
    )
    card = one(sign(order(dose=4), rec), "data-unavailable")
    assert "adverse events with CTCAE grade" in card["detail"]
    assert "500" in card["detail"]


def test_malformed_lab_is_skipped_and_named() -> None:
    broken = {
        "resourceType": "Observation",
        "id": "bad",
        "status": "final",
        "code": concept(LOINC, "751-8"),
        "valueQuantity": {"value": "lots"},
    }
    cards = sign(order(dose=4), record(history=HISTORY, labs=[*good_cbc(), broken]))
    assert "Observation/bad" in one(cards, "data-uninterpretable")["detail"]


def test_malformed_irrelevant_resource_is_not_even_read() -> None:
    junk = {"resourceType": "Observation", "id": "junk", "status": 7, "code": concept(LOINC, "1-1")}
    assert sign(order(dose=4), record(history=HISTORY, labs=[*good_cbc(), junk])) == []


def test_active_pregnancy_condition_stops_the_regimen() -> None:
    condition = {
        "resourceType": "Condition",
        "id": "preg-c",
        "subject": {"reference": "Patient/p1"},
        "code": concept(SNOMED, "77386006", "Pregnant"),
        "clinicalStatus": concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
        ),
    }
    cards = sign(order(dose=4), record(history=HISTORY, conditions=[condition]))
    assert "Condition/preg-c" in one(cards, "pregnancy")["detail"]
