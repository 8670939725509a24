"""Starting dose in hepatic and renal impairment: only when ixazomib is being started."""

from __future__ import annotations

from decimal import Decimal

from .builders import (
    RXNORM,
    SNOMED,
    UCUM,
    concept,
    good_cbc,
    lab,
    one,
    order,
    patient,
    recommendation,
    record,
    rules_of,
    sign,
)

BILIRUBIN, CREATININE, WEIGHT, CRCL, EGFR = "1975-2", "2160-0", "29463-7", "2164-2", "62238-1"


def normal_chemistry() -> list[dict]:  # type: ignore[type-arg]
    return [
        lab(BILIRUBIN, "0.8", "mg/dL", 3),
        lab(CREATININE, "0.9", "mg/dL", 3),
        lab(WEIGHT, "70", "kg", 3),
    ]


def start(labs: list[dict], **others: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    return sign(order(dose=4, id="new"), record(labs=good_cbc() + labs, **others))


def test_normal_function_starts_at_4_mg_silently() -> None:
    assert start(normal_chemistry()) == []


def test_bilirubin_above_1_5_uln_starts_reduced_with_product_switch() -> None:
    bilirubin = lab(BILIRUBIN, "1.9", "mg/dL", 3, high={"value": Decimal("1.2"), "unit": "mg/dL"})
    draft = order(code="1723770", dose=4, id="new")  # ixazomib 4 mg capsule
    cards = sign(draft, record(labs=[*good_cbc(), bilirubin, *normal_chemistry()[1:]]))
    card = one(cards, "hepatic-start-dose")
    assert recommendation(card)["ixazomib"] == {"action": "start-reduced", "doseMg": 3}
    assert "1.58" in card["detail"]  # 1.9 / 1.2
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["id"] == "new"
    assert resource["medicationCodeableConcept"]["coding"][0]["code"] == "1723765"


def test_bilirubin_exactly_1_5_uln_is_mild() -> None:
    bilirubin = lab(BILIRUBIN, "1.8", "mg/dL", 3, high={"value": Decimal("1.2"), "unit": "mg/dL"})
    assert start([bilirubin, *normal_chemistry()[1:]]) == []


def test_bilirubin_in_umol_against_uln_in_mg_dl_is_exact() -> None:
    # 30.78 umol/L = 1.8 mg/dL exactly = 1.5 x 1.2: not above.
    bilirubin = lab(
        BILIRUBIN, "30.78", "umol/L", 3, high={"value": Decimal("1.2"), "unit": "mg/dL"}
    )
    assert start([bilirubin, *normal_chemistry()[1:]]) == []
    bilirubin = lab(
        BILIRUBIN,
        "30.79",
        "µmol/L",
        3,
        system=None,
        high={"value": Decimal("1.2"), "unit": "mg/dL"},
    )
    assert "hepatic-start-dose" in rules_of(start([bilirubin, *normal_chemistry()[1:]]))


def test_missing_uln_is_assumed_and_said() -> None:
    cards = start([lab(BILIRUBIN, "2.0", "mg/dL", 3), *normal_chemistry()[1:]])
    card = one(cards, "hepatic-start-dose")
    assert "assumed" in card["detail"].lower()
    assert "1.2 mg/dL" in card["detail"]


def test_hepatic_rule_not_applied_when_already_on_ixazomib() -> None:
    history = [order(status="active", days_ago=30, dose=4)]
    rec = record(history=history, labs=[*good_cbc(), lab(BILIRUBIN, "5", "mg/dL", 3)])
    assert sign(order(dose=4), rec) == []


def test_cockcroft_gault_below_30_starts_reduced_and_shows_the_numbers() -> None:
    # (140 - 80) x 50 x 0.85 / (72 x 1.5) = 23.6 mL/min
    labs = [
        lab(BILIRUBIN, "0.5", "mg/dL", 3),
        lab(CREATININE, "1.5", "mg/dL", 3),
        lab(WEIGHT, "50", "kg", 3),
    ]
    cards = start(labs, patient=[patient(birth="1944-06-01", gender="female")])
    card = one(cards, "renal-start-dose")
    assert recommendation(card)["ixazomib"] == {"action": "start-reduced", "doseMg": 3}
    assert "(140 - 80) x 50 kg x 0.85 / (72 x 1.5 mg/dL) = 23.6 mL/min" in card["detail"]


def test_cockcroft_gault_uses_creatinine_in_umol_and_weight_in_pounds() -> None:
    # 132.6 umol/L = 1.5 mg/dL; 110.23 lb = 50.0 kg
    labs = [
        lab(BILIRUBIN, "0.5", "mg/dL", 3),
        lab(CREATININE, "132.6", "umol/L", 3),
        lab(WEIGHT, "110.23", "[lb_av]", 3),
    ]
    cards = start(labs, patient=[patient(birth="1944-06-01", gender="female")])
    assert "renal-start-dose" in rules_of(cards)


def test_unknown_sex_asks_when_it_changes_the_answer() -> None:
    # age 80: female 26.6, male 31.3 mL/min
    labs = [
        lab(BILIRUBIN, "0.5", "mg/dL", 3),
        lab(CREATININE, "1.6", "mg/dL", 3),
        lab(WEIGHT, "60", "kg", 3),
    ]
    cards = start(labs, patient=[patient(birth="1945-01-01", gender="unknown")])
    card = one(cards, "renal-start-dose")
    assert recommendation(card)["ixazomib"] == {"action": "review"}


def test_measured_crcl_wins_over_cockcroft_gault() -> None:
    labs = [*normal_chemistry(), lab(CRCL, "25", "mL/min", 3)]
    assert "renal-start-dose" in rules_of(start(labs))


def test_egfr_is_a_labelled_fallback() -> None:
    labs = [lab(BILIRUBIN, "0.5", "mg/dL", 3), lab(EGFR, "25", "mL/min/{1.73_m2}", 3)]
    card = one(start(labs), "renal-start-dose")
    assert "FALLBACK" in card["detail"]


def test_esrd_condition_starts_reduced() -> None:
    esrd = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": concept(SNOMED, "46177005", "End-stage renal disease"),
        "clinicalStatus": concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
        ),
    }
    card = one(start(normal_chemistry(), conditions=[esrd]), "renal-start-dose")
    assert "Condition/c1" in card["detail"]
    resolved = {
        **esrd,
        "clinicalStatus": concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved"
        ),
    }
    assert start(normal_chemistry(), conditions=[resolved]) == []


def test_recent_dialysis_procedure_starts_reduced() -> None:
    dialysis = {
        "resourceType": "Procedure",
        "id": "hd",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "code": concept(SNOMED, "302497006"),
        "performedDateTime": "2025-02-27T08:00:00Z",
    }
    assert "renal-start-dose" in rules_of(start(normal_chemistry(), procedures=[dialysis]))


def test_missing_start_data_asks_for_it() -> None:
    cards = start([])
    assert recommendation(one(cards, "hepatic-start-dose"))["ixazomib"] == {"action": "review"}
    card = one(cards, "renal-start-dose")
    assert "serum creatinine" in card["detail"]


def test_draft_already_at_3_mg_needs_no_start_card() -> None:
    labs = [lab(BILIRUBIN, "5", "mg/dL", 3)]
    assert sign(order(dose=3), record(labs=good_cbc() + labs)) == []


def test_first_order_below_the_starting_dose_is_noted() -> None:
    card = one(
        sign(order(dose="2.3"), record(labs=good_cbc() + normal_chemistry())), "dose-level-due"
    )
    assert card["indicator"] == "info"
    assert recommendation(card)["ixazomib"] == {"action": "correct-dose", "doseMg": 4}


_ = (RXNORM, UCUM)
