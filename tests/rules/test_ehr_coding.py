"""Orders coded as EHRs code them (issue 12, items 3-5): by NDC, ATC, RxNorm under its OID, a
contained Medication, or only by text; doses counted in pills; the frequency checked whatever
the dose. Each drug name and code here is from the label reference (its "Codes" section)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from cds_service.rules.facts.orders import ndc_strength, ndc_with_strength
from cds_service.rules.inputs import JsonDict

from .builders import (
    IXAZOMIB,
    IXAZOMIB_4MG,
    LENALIDOMIDE,
    RXNORM,
    UCUM,
    anc,
    by_rule,
    concept,
    lab,
    lab_result,
    one,
    order,
    platelets,
    recommendation,
    record,
    rules_of,
    sign,
)

NDC = "http://hl7.org/fhir/sid/ndc"
NDC_OID = "urn:oid:2.16.840.1.113883.6.69"
RXNORM_OID = "urn:oid:2.16.840.1.113883.6.88"
ATC = "http://www.whocc.no/atc"
ON_IXAZOMIB = [order(status="active", days_ago=30, dose=4)]
LOW_ANC = [anc(300, 1), platelets(200000, 1)]
WEEKLY = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}}
DAILY = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}}  # the Sandbox's default


def text_only(text: str) -> JsonDict:
    """A local formulary code and a text: what many EHRs send for a medication."""
    return {
        "coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.698288", "code": "80321"}],
        "text": text,
    }


def counted(medication: JsonDict, count: Any = 1, unit: str = "{pill}", **kwargs: Any) -> JsonDict:
    """An order dosed as a count of the product (``1 {pill}``), as the CDS Hooks Sandbox does."""
    draft = order(dose=None, medication=medication, **kwargs)
    draft["dosageInstruction"][0]["doseAndRate"] = [
        {"doseQuantity": {"value": Decimal(str(count)), "system": UCUM, "code": unit}}
    ]
    return draft


def coded(system: str, code: str) -> JsonDict:
    return {"medicationCodeableConcept": concept(system, code)}


def contained_ndc(code: str) -> JsonDict:
    return {
        "contained": [{"resourceType": "Medication", "id": "med", "code": concept(NDC, code)}],
        "medicationReference": {"reference": "#med"},
    }


ORDERS_OF_IXAZOMIB = {
    "NDC 10-digit": coded(NDC, "63020-080-02"),
    "NDC 11-digit 5-4-2": coded(NDC, "63020-0080-02"),
    "NDC product": coded(NDC, "63020-080"),
    "NDC 11-digit without hyphens": coded(NDC, "63020008002"),
    "NDC under its OID": coded(NDC_OID, "63020-080-02"),
    "ATC L01XG03": coded(ATC, "L01XG03"),
    "former ATC L01XX50": coded(ATC, "L01XX50"),
    "RxNorm under its OID": coded(RXNORM_OID, IXAZOMIB_4MG),
    "contained Medication coded by NDC": contained_ndc("63020-0080-02"),
    "text NINLARO 4 MG PO CAPS": {"medicationCodeableConcept": text_only("NINLARO 4 MG PO CAPS")},
    "text ixazomib": {"medicationCodeableConcept": text_only("ixazomib")},
}


@pytest.mark.parametrize("medication", ORDERS_OF_IXAZOMIB.values(), ids=ORDERS_OF_IXAZOMIB.keys())
def test_an_ixazomib_order_however_coded_is_held_for_an_anc_of_300(medication: JsonDict) -> None:
    cards = sign(order(dose=4, medication=medication), record(history=ON_IXAZOMIB, labs=LOW_ANC))
    card = one(cards, "anc-below-500")
    assert recommendation(card)["ixazomib"]["action"] == "hold"
    assert "300" in card["detail"]


def test_an_order_recognised_by_text_says_so_and_names_the_strength_read() -> None:
    draft = counted({"medicationCodeableConcept": text_only("NINLARO 4 MG PO CAPS")})
    cards = sign(draft, record(history=ON_IXAZOMIB, labs=LOW_ANC))
    detail = one(cards, "anc-below-500")["detail"]
    assert "recognised by its text, 'NINLARO 4 MG PO CAPS'" in detail
    assert "strength was read from the text: 4 MG" in detail


def test_a_text_with_the_strength_doses_a_count_of_capsules() -> None:
    # 1 capsule of "NINLARO 4 MG PO CAPS" is 4 mg: a labelled weekly dose, nothing to say.
    draft = counted({"medicationCodeableConcept": text_only("NINLARO 4 MG PO CAPS")})
    assert sign(draft, record(history=ON_IXAZOMIB)) == []
    # 2 of them are 8 mg: an overdose, and its card says how the drug was recognised.
    doubled = counted({"medicationCodeableConcept": text_only("NINLARO 4 MG PO CAPS")}, count=2)
    card = one(sign(doubled, record(history=ON_IXAZOMIB)), "overdose")
    assert card["indicator"] == "critical"
    assert "8 mg per dose" in card["summary"]
    assert "recognised by its text" in card["detail"]


def test_coded_orders_carry_no_text_recognition_note() -> None:
    cards = sign(order(dose=4), record(history=ON_IXAZOMIB, labs=LOW_ANC))
    assert "recognised by its text" not in one(cards, "anc-below-500")["detail"]


@pytest.mark.parametrize(
    ("code", "strength"),
    [
        ("63020-078-02", "2.3"),
        ("63020-079-02", "3"),
        ("63020-080-02", "4"),
        ("63020-0079-02", "3"),
        ("63020-079", "3"),
        ("63020-0079", "3"),
        ("6302007902", "3"),
        ("63020007902", "3"),
    ],
)
def test_each_ndc_form_carries_the_capsule_strength(code: str, strength: str) -> None:
    assert ndc_strength(code) == Decimal(strength)
    assert ndc_strength(ndc_with_strength(code, Decimal(4)) or "") == Decimal(4)


@pytest.mark.parametrize("code", ["63020-081-02", "6302-0080-02", "12345-080-02", "63020", "x"])
def test_other_ndcs_are_not_ixazomib(code: str) -> None:
    assert ndc_strength(code) is None


def test_an_ndc_product_doses_a_count_of_capsules_and_its_update_switches_the_ndc() -> None:
    assert sign(counted(coded(NDC, "63020-080-02"), timing=WEEKLY), record(ON_IXAZOMIB)) == []
    # Starting ixazomib with moderate hepatic impairment: the 3 mg package of the same form.
    bilirubin = lab(
        "1975-2", "2.4", "mg/dL", 1, high={"value": 1.2, "unit": "mg/dL", "system": UCUM}
    )
    crcl = lab("35591-7", 80, "mL/min", 1)
    cards = sign(
        counted(coded(NDC, "63020-0080-02")),
        record(labs=[*LOW_ANC[1:], anc(2000, 1), bilirubin, crcl]),
    )
    card = one(cards, "hepatic-start-dose")
    resource = card["suggestions"][0]["actions"][0]["resource"]
    codes = [(c["system"], c["code"]) for c in resource["medicationCodeableConcept"]["coding"]]
    assert codes == [(NDC, "63020-0079-02")]


def test_lenalidomide_by_atc_or_text_is_withheld_with_ixazomib() -> None:
    for medication in (
        coded(ATC, "L04AX04"),
        {"medicationCodeableConcept": text_only("Revlimid 25 mg")},
    ):
        lenalidomide = order(dose=25, medication=medication, id="len-draft")
        cards = sign([order(dose=4), lenalidomide], record(history=ON_IXAZOMIB, labs=LOW_ANC))
        card = one(cards, "anc-below-500")
        deleted = [
            a["resourceId"]
            for s in card["suggestions"]
            for a in s["actions"]
            if a["type"] == "delete"
        ]
        assert "MedicationRequest/len-draft" in deleted


def test_a_lenalidomide_order_alone_gets_no_ixazomib_card() -> None:
    medication = {"medicationCodeableConcept": text_only("lenalidomide 25 mg capsule")}
    assert sign(order(dose=25, medication=medication), record(history=ON_IXAZOMIB)) == []


def test_an_inducer_coded_under_the_rxnorm_oid_is_an_interaction() -> None:
    rifampin = order(dose=600, medication=coded(RXNORM_OID, "9384"), status="active")
    cards = sign(order(dose=4), record(history=[*ON_IXAZOMIB, rifampin]))
    assert "rifampin" in one(cards, "strong-cyp3a-inducer")["detail"]


@pytest.mark.parametrize(
    "medication",
    [
        {"medicationCodeableConcept": text_only("aspirin 81 mg tablet")},
        {"medicationCodeableConcept": {"coding": [{"system": "urn:oid:1.2.3", "code": "80321"}]}},
        coded(NDC, "00093-7146-56"),
        coded(ATC, "N02BA01"),
    ],
    ids=["text", "local code", "other NDC", "other ATC"],
)
def test_an_order_nothing_names_as_ixazomib_gets_no_card(medication: JsonDict) -> None:
    assert sign(order(dose=81, medication=medication), record(labs=LOW_ANC)) == []


# --- item 3: doses counted in dose forms -------------------------------------------------


@pytest.mark.parametrize("unit", ["{pill}", "{tab}", "{tbl}", "{capsule}", "{cap}", "{Capsule}"])
def test_one_pill_of_the_4_mg_product_is_a_4_mg_dose(unit: str) -> None:
    draft = counted(coded(RXNORM, IXAZOMIB_4MG), unit=unit, timing=WEEKLY)
    assert sign(draft, record(history=ON_IXAZOMIB)) == []


def test_two_pills_of_the_4_mg_product_are_an_overdose() -> None:
    card = one(sign(counted(coded(RXNORM, IXAZOMIB_4MG), count=2), record(ON_IXAZOMIB)), "overdose")
    assert "8 mg per dose" in card["summary"]


def test_pills_of_an_ingredient_code_cannot_be_counted() -> None:
    cards = sign(counted(coded(RXNORM, IXAZOMIB), timing=WEEKLY), record(history=ON_IXAZOMIB))
    assert rules_of(cards) == ["data-uninterpretable"]


# --- item 4: the frequency whatever the dose ---------------------------------------------


def test_a_daily_order_whose_dose_cannot_be_read_is_an_overdose() -> None:
    cards = sign(counted(coded(RXNORM, IXAZOMIB), timing=DAILY), record(history=ON_IXAZOMIB))
    card = one(cards, "overdose")
    assert card["indicator"] == "critical"
    assert "7 doses a week" in card["summary"]
    advice = recommendation(card)["ixazomib"]
    assert (advice["action"], advice["doseMg"]) == ("correct-dose", 4)
    resource = card["suggestions"][0]["actions"][0]["resource"]
    repeat = resource["dosageInstruction"][0]["timing"]["repeat"]
    assert (repeat["frequency"], repeat["period"], repeat["periodUnit"]) == (1, 1, "wk")
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] == "mg"


def test_a_daily_order_with_no_dose_at_all_is_an_overdose() -> None:
    draft = order(dose=None, timing=DAILY)
    assert by_rule(sign(draft, record(history=ON_IXAZOMIB)), "overdose")


def test_a_daily_pill_of_the_4_mg_product_is_an_overdose_of_28_mg_a_week() -> None:
    card = one(
        sign(counted(coded(RXNORM, IXAZOMIB_4MG), timing=DAILY), record(ON_IXAZOMIB)), "overdose"
    )
    assert card["indicator"] == "critical"
    assert "7 doses a week" in card["summary"]


def test_a_lenalidomide_code_is_not_taken_for_ixazomib() -> None:
    assert sign(order(code=LENALIDOMIDE, dose=25, timing=DAILY), record(ON_IXAZOMIB)) == []


def test_the_update_of_an_order_named_by_text_names_the_new_product_by_code() -> None:
    bilirubin = lab(
        "1975-2", "2.4", "mg/dL", 1, high={"value": 1.2, "unit": "mg/dL", "system": UCUM}
    )
    crcl = lab("35591-7", 80, "mL/min", 1)
    draft = counted({"medicationCodeableConcept": text_only("NINLARO 4 MG PO CAPS")})
    card = one(
        sign(draft, record(labs=[*LOW_ANC[1:], anc(2000, 1), bilirubin, crcl])),
        "hepatic-start-dose",
    )
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["medicationCodeableConcept"] == {
        "coding": [{"system": RXNORM, "code": "1723765", "display": "ixazomib 3 MG Oral Capsule"}],
        "text": "ixazomib 3 MG Oral Capsule",
    }
    # Applied, the order is recognised by its code and starts at 3 mg: no card comes back.
    assert not by_rule(
        sign(resource, record(labs=[*LOW_ANC[1:], anc(2000, 1), bilirubin, crcl])),
        "hepatic-start-dose",
    )


def _by_missing_reference(display: str | None) -> JsonDict:
    reference: JsonDict = {"reference": "Medication/not-on-record"}
    if display is not None:
        reference["display"] = display
    return {"medicationReference": reference}


def test_an_unresolved_medication_named_ninlaro_by_its_display_is_checked() -> None:
    draft = order(dose=4, medication=_by_missing_reference("NINLARO 4 MG capsule"))
    cards = sign(draft, record(history=ON_IXAZOMIB, labs=LOW_ANC))
    card = one(cards, "anc-below-500")
    assert "recognised by its text, 'NINLARO 4 MG capsule'" in card["detail"]


def test_an_unresolved_medication_named_as_another_drug_gets_no_card() -> None:
    draft = order(dose=81, medication=_by_missing_reference("aspirin 81 mg tablet"))
    assert sign(draft, record(labs=LOW_ANC)) == []


def test_an_unresolved_medication_that_names_nothing_is_still_asked_about() -> None:
    cards = sign(order(dose=4, medication=_by_missing_reference(None)), record(labs=LOW_ANC))
    assert rules_of(cards) == ["data-unavailable"]


def test_the_update_of_a_contained_medication_coded_by_ndc_switches_its_ndc() -> None:
    bilirubin = lab(
        "1975-2", "2.4", "mg/dL", 1, high={"value": 1.2, "unit": "mg/dL", "system": UCUM}
    )
    crcl = lab("35591-7", 80, "mL/min", 1)
    draft = counted(contained_ndc("6302008002"))
    card = one(
        sign(draft, record(labs=[anc(2000, 1), LOW_ANC[1], bilirubin, crcl])), "hepatic-start-dose"
    )
    resource = card["suggestions"][0]["actions"][0]["resource"]
    (medication,) = resource["contained"]
    assert medication["code"]["coding"] == [{"system": NDC, "code": "6302007902"}]
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 3


def test_at_the_lab_hook_an_active_order_coded_by_ndc_or_text_is_held_for_a_low_anc() -> None:
    for medication in (
        coded(NDC, "63020-080-02"),
        {"medicationCodeableConcept": text_only("NINLARO 4 MG PO CAPS")},
    ):
        active = order(dose=4, status="active", days_ago=7, medication=medication, id="ixa-active")
        cards = lab_result([anc(300, 0.1)], record(history=[active]))
        card = one(cards, "anc-below-500")
        held = [a["resource"]["id"] for s in card["suggestions"] for a in s["actions"]]
        assert held == ["ixa-active"]


def test_product_codes_of_different_strengths_give_no_strength() -> None:
    medication = {
        "medicationCodeableConcept": {
            "coding": [
                {"system": RXNORM, "code": IXAZOMIB_4MG},
                {"system": NDC, "code": "63020-079-02"},
            ]
        }
    }
    cards = sign(counted(medication, timing=WEEKLY), record(history=ON_IXAZOMIB))
    card = one(cards, "data-uninterpretable")
    assert "different strengths" in card["detail"]


def test_a_lenalidomide_history_coded_by_atc_or_text_sets_its_dose_level() -> None:
    # First platelet episode recovered: lenalidomide one level lower than its ordered 25 mg.
    for medication in (
        coded(ATC, "L04AX04"),
        {"medicationCodeableConcept": text_only("REVLIMID 25 MG CAP")},
    ):
        history = [
            order(status="active", days_ago=30, dose=4),
            order(status="active", days_ago=30, dose=25, medication=medication),
        ]
        low = platelets(25000, 10)
        new = platelets(60000, 0, id="new")
        card = one(
            lab_result([new], record(history=history, labs=[low, new])), "platelets-below-30k"
        )
        assert recommendation(card)["lenalidomide"] == {"action": "reduce", "doseMg": 20}


def test_the_update_of_an_order_named_by_its_reference_display_names_the_new_product() -> None:
    bilirubin = lab(
        "1975-2", "2.4", "mg/dL", 1, high={"value": 1.2, "unit": "mg/dL", "system": UCUM}
    )
    crcl = lab("35591-7", 80, "mL/min", 1)
    draft = order(dose=4, medication=_by_missing_reference("NINLARO 4 MG capsule"))
    labs = [anc(2000, 1), LOW_ANC[1], bilirubin, crcl]
    resource = one(sign(draft, record(labs=labs)), "hepatic-start-dose")["suggestions"][0][
        "actions"
    ][0]["resource"]
    assert "medicationReference" not in resource
    assert resource["medicationCodeableConcept"]["coding"][0]["code"] == "1723765"
