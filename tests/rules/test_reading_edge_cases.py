"""Reading the record exactly (statuses, units, ranges, inducer names, terms, pain) and
suggestions that leave no trace of the old dose: what a clinician sees in each case."""

from __future__ import annotations

import re
from datetime import UTC
from decimal import Decimal

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest

from cds_service.rules.administration import PATIENT_INSTRUCTION
from cds_service.rules.cards import with_dose
from cds_service.rules.facts.orders import read_order
from cds_service.rules.facts.reading import Problems
from cds_service.rules.inputs import JsonDict, PatientRecord
from cds_service.rules.units import _UCUM, Kind, factor_for

from .builders import (
    ANC,
    DIARRHEA,
    IXAZOMIB,
    LENALIDOMIDE,
    LOINC,
    NCIT,
    NEUROPATHY,
    PLATELETS,
    RXNORM,
    SNOMED,
    UCUM,
    adverse_event,
    anc,
    concept,
    good_cbc,
    lab,
    lab_result,
    one,
    order,
    patient,
    patient_view,
    platelets,
    recommendation,
    record,
    rules_of,
    sign,
    when,
)

BILIRUBIN, CREATININE, WEIGHT, CRCL, EGFR = "1975-2", "2160-0", "29463-7", "2164-2", "62238-1"
ON_IXAZOMIB = [order(status="active", days_ago=30, dose=4, id="ixa")]


def _update(card: dict) -> dict:  # type: ignore[type-arg]
    (suggestion,) = card["suggestions"]
    (action,) = suggestion["actions"]
    assert action["type"] == "update"
    MedicationRequest.model_validate(action["resource"])  # still a valid FHIR R4 resource
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


# --- 2. lower-case UCUM litre ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "unit"),
    [
        (ANC, "0.4", "10*3/ul"),
        (ANC, "0.4", "10*9/l"),
        (ANC, "400", "/ul"),
        (ANC, "400", "{cells}/ul"),
        (ANC, "400", "10*6/l"),
        (PLATELETS, "25", "10*9/l"),
    ],
)
def test_lower_case_litre_counts_are_read(code: str, value: str, unit: str) -> None:
    cbc = [lab(code, value, unit, 1), anc(2000, 1) if code == PLATELETS else platelets(200000, 1)]
    cards = sign(order(dose=4), record(history=ON_IXAZOMIB, labs=cbc))
    rule = "anc-below-500" if code == ANC else "platelets-below-30k"
    assert recommendation(one(cards, rule))["ixazomib"] == {"action": "hold"}
    assert "data-uninterpretable" not in rules_of(cards)


@pytest.mark.parametrize(
    ("labs", "rule"),
    [
        ([lab(BILIRUBIN, "2.5", "mg/dl", 2)], "hepatic-start-dose"),
        ([lab(BILIRUBIN, "42.75", "umol/l", 2)], "hepatic-start-dose"),
        ([lab(BILIRUBIN, "25", "mg/l", 2)], "hepatic-start-dose"),
        ([lab(BILIRUBIN, "0.04275", "mmol/l", 2)], "hepatic-start-dose"),
        ([lab(CRCL, "25", "ml/min", 2)], "renal-start-dose"),
        ([lab(CRCL, "0.4", "ml/s", 2)], "renal-start-dose"),
        ([lab(EGFR, "20", "ml/min/{1.73_m2}", 2)], "renal-start-dose"),
        ([lab(EGFR, "20", "ml/min/1.73.m2", 2)], "renal-start-dose"),
        ([lab(CREATININE, "4", "mg/dl", 2), lab(WEIGHT, "60", "kg", 2)], "renal-start-dose"),
        ([lab(CREATININE, "353.6", "umol/l", 2), lab(WEIGHT, "60", "kg", 2)], "renal-start-dose"),
        ([lab(CREATININE, "40", "mg/l", 2), lab(WEIGHT, "60", "kg", 2)], "renal-start-dose"),
        ([lab(CREATININE, "0.3536", "mmol/l", 2), lab(WEIGHT, "60", "kg", 2)], "renal-start-dose"),
    ],
)
def test_lower_case_litre_chemistry_is_read(labs: list[dict], rule: str) -> None:  # type: ignore[type-arg]
    # Bilirubin 2.5 mg/dL = 2.08 x the assumed ULN; CrCl 25 mL/min; creatinine 4 mg/dL for a
    # 60 kg man of 70 gives a Cockcroft-Gault CrCl of 14.6 mL/min.
    rec = record(labs=[*good_cbc(), *labs], patient=[patient(birth="1954-06-01")])
    cards = sign(order(dose=4, id="new"), rec)
    card = one(cards, rule)
    assert recommendation(card)["ixazomib"] == {"action": "start-reduced", "doseMg": 3}
    assert _update(card)["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 3
    assert "data-uninterpretable" not in rules_of(cards)


def test_every_litre_code_has_its_lower_case_twin_and_nothing_else_is_accepted() -> None:
    # UCUM defines both "L" and "l" as the litre; "G" alone is the gauss, so "G/L" (read for
    # giga-per-litre) gets no lower-case twin, and case is otherwise still significant.
    for kind, table in _UCUM.items():
        for code, factor in table.items():
            if "L" in code and code != "G/L":
                assert factor_for(kind, code.replace("L", "l"), UCUM, None) == factor, code
    for kind, code in [
        (Kind.CELL_COUNT, "G/l"),
        (Kind.CELL_COUNT, "10*3/UL"),
        (Kind.CELL_COUNT, "10*9/LL"),
        (Kind.BILIRUBIN, "MG/DL"),
        (Kind.BILIRUBIN, "UMOL/L"),
        (Kind.CLEARANCE, "ML/MIN"),
    ]:
        assert factor_for(kind, code, UCUM, None) is None, code


# --- 3. reference ranges are read only where they are used (bilirubin ULN) --------------------


def test_unitless_reference_range_of_a_count_adds_no_review_card() -> None:
    low = anc(400, 1, high={"value": Decimal("7.5")})  # a range without a unit
    cards = sign(order(dose=4), record(history=ON_IXAZOMIB, labs=[low, platelets(200000, 1)]))
    assert rules_of(cards) == ["anc-below-500"]
    assert recommendation(cards[0])["ixazomib"] == {"action": "hold"}


def test_unitless_reference_range_of_chemistry_adds_no_review_card() -> None:
    labs = [
        *good_cbc(),
        lab(BILIRUBIN, "0.8", "mg/dL", 2, high={"value": Decimal("1.2"), "unit": "mg/dL"}),
        lab(CREATININE, "4", "mg/dL", 2, high={"value": Decimal("1.3")}),
        lab(WEIGHT, "60", "kg", 2, high={"value": Decimal("100")}),
    ]
    rec = record(labs=labs, patient=[patient(birth="1954-06-01")])
    cards = sign(order(dose=4, id="new"), rec)
    assert rules_of(cards) == ["renal-start-dose"]


def test_unitless_reference_range_of_bilirubin_is_still_named() -> None:
    # The bilirubin ULN is used: a range that cannot be read is named, and the card says which
    # ULN it assumed instead.
    bilirubin = lab(BILIRUBIN, "2.5", "mg/dL", 2, high={"value": Decimal("1.2")}, id="bili")
    cards = sign(order(dose=4, id="new"), record(labs=[*good_cbc(), bilirubin]))
    assert "Observation/bili: reference range unit" in one(cards, "data-uninterpretable")["detail"]
    assert "ASSUMED" in one(cards, "hepatic-start-dose")["detail"]


# --- 4. strong CYP3A inducers named in free text ----------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "St. Johns Wort 300 mg capsule",
        "St John\u2019s wort extract",  # typographic apostrophe
        "Saint John's wort",
        "ST. JOHN'S-WORT",
        "St Johnswort tea",
        "Hypericum perforatum",
        "RIFAMPICIN 600 mg",
    ],
)
def test_strong_cyp3a_inducer_named_in_text(text: str) -> None:
    herbal = order(
        status="active",
        dose=300,
        days_ago=5,
        medication={"medicationCodeableConcept": {"text": text}},
    )
    cards = sign(order(dose=4), record(history=[*ON_IXAZOMIB, herbal]))
    card = one(cards, "strong-cyp3a-inducer")
    assert recommendation(card)["ixazomib"] == {"action": "review"}
    assert herbal["id"] in card["detail"]


def test_text_that_only_resembles_an_inducer_is_not_one() -> None:
    other = order(
        status="active",
        dose=5,
        days_ago=5,
        medication={"medicationCodeableConcept": {"text": "John's lozenges (st. wort-free)"}},
    )
    assert sign(order(dose=4), record(history=[*ON_IXAZOMIB, other])) == []


# --- 5. a toxicity term is named once ----------------------------------------------------------

MEDDRA = "http://terminology.hl7.org/CodeSystem/mdr"


def test_other_toxicity_term_is_named_once() -> None:
    term = {
        "text": "Diarrhoea",
        "coding": [
            {"system": MEDDRA, "code": "10012735", "display": "Diarrhoea"},
            {"system": NCIT, "code": "C143272", "display": "Diarrhea"},
        ],
    }
    cards = sign(
        order(dose=4, id="draft"),
        record(history=ON_IXAZOMIB, adverseEvents=[adverse_event(term, 3, suspect="x")]),
    )
    card = one(cards, "other-toxicity-grade-3-4")
    assert card["summary"] == "Grade 3 diarrhoea: withhold ixazomib"
    assert "- diarrhoea: Grade 3, ongoing" in card["detail"]
    assert "diarrhea" not in card["detail"]


def test_neuropathy_term_is_named_once() -> None:
    term = {
        "text": "Peripheral sensory neuropathy",
        "coding": [{"system": NCIT, "code": "C143752", "display": "Peripheral sensory neuropathy"}],
    }
    cards = sign(
        order(dose=4, id="draft"),
        record(history=ON_IXAZOMIB, adverseEvents=[adverse_event(term, 4)]),
    )
    card = one(cards, "neuropathy-grade-4")
    assert card["summary"] == "peripheral sensory neuropathy Grade 4: discontinue the regimen"
    assert card["detail"].count("peripheral sensory neuropathy") == 1


def test_graded_observation_term_is_named_once_and_falls_back_to_a_display() -> None:
    coded_only = {
        "coding": [
            {"system": NCIT, "code": "C143272", "display": "Diarrhea"},
            {"system": MEDDRA, "code": "10012735", "display": "DIARRHEA"},
        ]
    }
    graded = {
        "resourceType": "Observation",
        "id": "g1",
        "status": "final",
        "code": coded_only,
        "effectiveDateTime": when(1),
        "valueInteger": 3,
    }
    cards = sign(order(dose=4), record(history=ON_IXAZOMIB, toxicityObservations=[graded]))
    card = one(cards, "other-toxicity-grade-3-4")
    assert card["summary"] == "Grade 3 diarrhea: withhold ixazomib"


# --- 6. neuropathic pain recorded as a Condition counts as "with pain" -----------------------

CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def pain_condition(
    code: JsonDict | None = None,
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    id: str = "pain",
) -> JsonDict:
    resource: JsonDict = {
        "resourceType": "Condition",
        "id": id,
        "subject": {"reference": "Patient/p1"},
        "code": code or concept(SNOMED, "247398009", "Neuropathic pain"),
        "onsetDateTime": when(20),
    }
    if clinical:
        resource["clinicalStatus"] = concept(CONDITION_CLINICAL, clinical)
    if verification:
        resource["verificationStatus"] = concept(CONDITION_VERIFICATION, verification)
    return resource


def _neuropathy_with(grade: int, conditions: list[JsonDict]) -> list[JsonDict]:
    rec = record(
        history=ON_IXAZOMIB,
        adverseEvents=[adverse_event(NEUROPATHY, grade)],
        conditions=conditions,
    )
    return sign(order(dose=4, id="draft"), rec)


@pytest.mark.parametrize(
    "code",
    [concept(SNOMED, "247398009", "Neuropathic pain"), concept(NCIT, "C143703", "Neuralgia")],
)
def test_active_neuropathic_pain_condition_makes_grade_1_neuropathy_a_hold(code: JsonDict) -> None:
    cards = _neuropathy_with(1, [pain_condition(code)])
    assert rules_of(cards) == ["neuropathy-grade-1-pain-or-2"]
    card = cards[0]
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    assert card["summary"] == "Peripheral neuropathy Grade 1 with pain: withhold ixazomib"
    name = code["coding"][0]["display"].lower()
    assert (
        f"- pain: {name} (active Condition; no CTCAE grade recorded, shown as Grade 1): "
        "Grade 1, ongoing, 2025-02-09 12:00 UTC [Condition/pain]"
    ) in card["detail"]
    (suggestion,) = card["suggestions"]
    assert suggestion["actions"] == [
        {
            "type": "delete",
            "description": "Remove the draft MedicationRequest/draft",
            "resourceId": "MedicationRequest/draft",
        }
    ]


def test_active_neuropathic_pain_condition_makes_grade_2_neuropathy_the_higher_row() -> None:
    cards = _neuropathy_with(2, [pain_condition(verification=None)])
    assert rules_of(cards) == ["neuropathy-grade-2-pain-or-3"]
    assert cards[0]["summary"] == "Peripheral neuropathy Grade 2 with pain: withhold ixazomib"


@pytest.mark.parametrize(
    ("clinical", "verification"),
    [
        ("resolved", "confirmed"),
        ("inactive", "confirmed"),
        ("remission", "confirmed"),
        ("active", "refuted"),
        ("active", "entered-in-error"),
        ("active", "unconfirmed"),
    ],
)
def test_neuropathic_pain_condition_that_does_not_hold_is_no_pain(
    clinical: str, verification: str
) -> None:
    assert _neuropathy_with(1, [pain_condition(clinical=clinical, verification=verification)]) == []


def test_other_conditions_are_not_pain() -> None:
    diabetes = pain_condition(concept(SNOMED, "44054006", "Diabetes mellitus type 2"))
    assert _neuropathy_with(1, [diabetes]) == []


# --- 7. a new result that is not final is named at the lab-result hook -----------------------

ON_REGIMEN = [
    *ON_IXAZOMIB,
    order(code=LENALIDOMIDE, status="active", days_ago=30, dose=25, id="len"),
]


@pytest.mark.parametrize("status", ["preliminary", "registered"])
def test_new_result_that_is_not_final_is_named_not_dropped(status: str) -> None:
    new = lab(ANC, "0.2", "10*9/L", 0, status=status, id="prelim")
    cards = lab_result([new], record(history=ON_REGIMEN, labs=[*good_cbc(), new]))
    card = one(cards, "data-uninterpretable")
    assert rules_of(cards) == ["data-uninterpretable"]  # not used for a hold
    assert recommendation(card)["ixazomib"] == {"action": "review"}
    expected = f"ANC Observation/prelim (0.2 10*9/L, {when(0)}): status {status}; not used"
    assert expected in card["detail"]


def test_final_result_beside_a_preliminary_one_is_still_used() -> None:
    preliminary = lab(ANC, "0.2", "10*9/L", 0, status="preliminary", id="prelim")
    final = lab(ANC, "0.3", "10*9/L", 0, id="final")
    cards = lab_result([preliminary, final], record(history=ON_REGIMEN, labs=good_cbc()))
    # The final result of the same draw is judged; the preliminary one needs no review.
    assert rules_of(cards) == ["anc-below-500"]
    assert "Observation/final" in one(cards, "anc-below-500")["detail"]


def test_preliminary_pregnancy_status_is_named() -> None:
    status = {
        "resourceType": "Observation",
        "id": "preg",
        "status": "preliminary",
        "code": concept(LOINC, "82810-3"),
        "effectiveDateTime": when(0),
        "valueCodeableConcept": concept(SNOMED, "77386006", "Pregnant"),
    }
    cards = lab_result([status], record(history=ON_REGIMEN))
    assert rules_of(cards) == ["data-uninterpretable"]
    assert "pregnancy status Observation/preg (Pregnant, " in cards[0]["detail"]


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error"])
def test_new_result_that_never_was_says_nothing(status: str) -> None:
    new = lab(ANC, "0.2", "10*9/L", 0, status=status, id="gone")
    assert lab_result([new], record(history=ON_REGIMEN)) == []


def test_old_preliminary_results_are_not_named() -> None:
    old = lab(ANC, "0.2", "10*9/L", 3, status="preliminary", id="old")
    assert lab_result([anc(2500, 0)], record(history=ON_REGIMEN, labs=[old])) == []
    assert sign(order(dose=4), record(history=ON_REGIMEN, labs=[*good_cbc(), old])) == []


# --- 8. the update suggestion carries the new dose everywhere, and keeps the order's dates -----

NDC = "http://hl7.org/fhir/sid/ndc"
OLD_DOSE_TEXT = re.compile(r"(?<![\d.])4\s*-?\s*mg\b", re.IGNORECASE)
EMPTY_STOMACH = {"text": "Take on an empty stomach, at least 1 hour before or 2 hours after food"}


def _texts(value: object) -> list[str]:
    if isinstance(value, dict):
        return [t for item in value.values() for t in _texts(item)]
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    return [value] if isinstance(value, str) else []


def _start_reduced(draft: JsonDict) -> JsonDict:
    bilirubin = lab(BILIRUBIN, "2.5", "mg/dL", 2, high={"value": Decimal("1.2"), "unit": "mg/dL"})
    card = one(sign(draft, record(labs=[*good_cbc(), bilirubin])), "hepatic-start-dose")
    assert recommendation(card)["ixazomib"] == {"action": "start-reduced", "doseMg": 3}
    return _update(card)


def test_update_states_the_new_dose_in_every_text() -> None:
    draft = order(dose=4, id="new")
    dosage = draft["dosageInstruction"][0]
    dosage["text"] = "4 mg by mouth once weekly on days 1, 8 and 15 of a 28-day cycle"
    dosage["patientInstruction"] = "Take one 4 mg capsule once a week on an empty stomach"
    dosage["additionalInstruction"] = [EMPTY_STOMACH, {"text": "4 mg = one capsule"}]
    resource = _start_reduced(draft)
    (new_dosage,) = resource["dosageInstruction"]
    assert new_dosage["text"] == "ixazomib 3 mg by mouth"
    # The draft's stated the old dose: it must not reach anyone; the label's takes its place.
    assert new_dosage["patientInstruction"] == PATIENT_INSTRUCTION
    assert new_dosage["additionalInstruction"][0] == EMPTY_STOMACH
    assert "4 mg = one capsule" not in _texts(new_dosage["additionalInstruction"])
    assert new_dosage["timing"] == draft["dosageInstruction"][0]["timing"]
    assert not [t for t in _texts(resource) if OLD_DOSE_TEXT.search(t)]


def test_patient_instruction_without_a_dose_is_kept() -> None:
    draft = order(dose=4, id="new")
    draft["dosageInstruction"][0]["patientInstruction"] = (
        "Swallow whole with water; 1 hour before food"
    )
    (dosage,) = _start_reduced(draft)["dosageInstruction"]
    assert dosage["patientInstruction"] == (
        f"Swallow whole with water; 1 hour before food\n{PATIENT_INSTRUCTION}"
    )
    assert "text" not in dosage  # none was sent: the structured dose says it


def test_update_drops_a_second_dose_entry_and_codes_of_the_old_strength() -> None:
    draft = order(dose=4, id="new")
    draft["dosageInstruction"][0]["doseAndRate"].append(
        {"doseQuantity": {"value": Decimal(4), "unit": "mg", "system": UCUM, "code": "mg"}}
    )
    draft["medicationCodeableConcept"] = {
        "coding": [
            {"system": RXNORM, "code": "1723735", "display": "ixazomib"},
            {"system": NDC, "code": "63020-080-02", "display": "NINLARO 4 MG CAPSULE"},
        ],
        "text": "ixazomib 4 mg capsule",
    }
    resource = _start_reduced(draft)
    (rate,) = resource["dosageInstruction"][0]["doseAndRate"]
    assert rate["doseQuantity"]["value"] == 3
    assert resource["medicationCodeableConcept"] == {
        "coding": [{"system": RXNORM, "code": "1723735", "display": "ixazomib"}]
    }
    assert not [t for t in _texts(resource) if OLD_DOSE_TEXT.search(t)]


def test_codes_and_texts_that_state_the_new_dose_are_kept() -> None:
    # An overdose by frequency keeps the dose (4 mg): what states 4 mg is still right.
    draft = order(
        dose=4, id="d1", timing={"repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}}
    )
    draft["medicationCodeableConcept"] = {
        "coding": [
            {"system": RXNORM, "code": "1723735", "display": "ixazomib"},
            {"system": NDC, "code": "63020-080-02", "display": "NINLARO 4 MG CAPSULE"},
        ],
        "text": "ixazomib 4 mg capsule",
    }
    card = one(sign(draft, record(history=ON_IXAZOMIB)), "overdose")
    resource = _update(card)
    assert resource["medicationCodeableConcept"] == draft["medicationCodeableConcept"]


def test_contained_medication_strength_follows_the_product() -> None:
    ninlaro_4 = {
        "resourceType": "Medication",
        "id": "ninlaro",
        "code": {
            "coding": [
                {"system": RXNORM, "code": "1723772", "display": "Ninlaro 4 MG Oral Capsule"}
            ],
            "text": "NINLARO (ixazomib) 4 mg capsule",
        },
        "ingredient": [
            {
                "itemCodeableConcept": concept(RXNORM, "1723734", "ixazomib citrate"),
                "isActive": True,
                "strength": {
                    "numerator": {"value": Decimal(4), "unit": "mg", "system": UCUM, "code": "mg"},
                    "denominator": {"value": Decimal(1), "unit": "capsule"},
                },
            }
        ],
    }
    draft = order(
        dose=4,
        id="new",
        medication={"contained": [ninlaro_4], "medicationReference": {"reference": "#ninlaro"}},
    )
    (medication,) = _start_reduced(draft)["contained"]
    assert medication["code"]["coding"][0]["code"] == "1723767"  # Ninlaro 3 mg
    assert medication["code"]["text"] == "ixazomib 3 MG Oral Capsule [Ninlaro]"
    # The product code now carries the strength; a 4 mg/capsule strength must not stay beside it.
    assert medication["ingredient"] == [
        {"itemCodeableConcept": concept(RXNORM, "1723734", "ixazomib citrate"), "isActive": True}
    ]


def test_fixed_frequency_keeps_the_dates_and_drops_only_what_set_the_frequency() -> None:
    bounds = {"start": when(-1), "end": when(-22)}
    timing = {
        "event": [when(-1)],
        "repeat": {
            "boundsPeriod": bounds,
            "duration": 1,
            "durationUnit": "min",
            "frequency": 2,
            "period": 1,
            "periodUnit": "wk",
            "dayOfWeek": ["mon", "thu"],
            "timeOfDay": ["08:00:00"],
            "when": ["ACM"],
            "offset": 60,
            "count": 6,
        },
        "code": {"text": "2 time(s) per 1 wk"},
    }
    draft = order(dose=4, id="d1", timing=timing)
    draft["dosageInstruction"][0]["text"] = "4 mg by mouth 2 times a week"
    draft["dosageInstruction"][0]["patientInstruction"] = "Take on Mondays and Thursdays"
    card = one(sign(draft, record(history=ON_IXAZOMIB)), "overdose")
    assert recommendation(card)["ixazomib"] == {"action": "correct-dose", "doseMg": 4}
    (dosage,) = _update(card)["dosageInstruction"]
    assert dosage["timing"] == {
        "repeat": {
            "boundsPeriod": bounds,
            "duration": 1,
            "durationUnit": "min",
            "frequency": 1,
            "period": 1,
            "periodUnit": "wk",
            "count": 3,
        }
    }
    assert dosage["text"] == (
        "ixazomib 4 mg by mouth once weekly on days 1, 8 and 15 of a 28-day cycle"
    )
    # The patient's own instructions gave the frequency being corrected: they cannot stay.
    assert dosage["patientInstruction"] == PATIENT_INSTRUCTION


def test_contained_medication_named_only_by_its_old_strength_loses_that_name() -> None:
    # Such an order is read as ixazomib through its ingredient (read_order); the update must
    # not leave an empty code behind when the only name it had stated the old strength.
    medication = {
        "resourceType": "Medication",
        "id": "local",
        "code": {"text": "IXAZOMIB 4MG CAP"},
        "ingredient": [{"itemCodeableConcept": concept(RXNORM, "1723735", "ixazomib")}],
    }
    draft = order(
        dose=4,
        id="new",
        medication={"contained": [medication], "medicationReference": {"reference": "#local"}},
    )
    read = read_order(draft, {}, UTC, Problems())
    assert read is not None
    (contained,) = with_dose(read, Decimal(3), fix_frequency=False)["contained"]
    assert contained == {
        "resourceType": "Medication",
        "id": "local",
        "ingredient": [{"itemCodeableConcept": concept(RXNORM, "1723735", "ixazomib")}],
    }


def test_every_dosage_instruction_gets_the_new_dose_and_keeps_its_days() -> None:
    draft = order(dose=4, id="new")
    days_1_and_8 = draft["dosageInstruction"][0]
    days_1_and_8["text"] = "4 mg on days 1 and 8"
    day_15 = {
        "sequence": 2,
        "text": "4 mg on day 15",
        "timing": {"repeat": {"frequency": 1, "period": 28, "periodUnit": "d"}},
        "doseAndRate": [
            {"doseQuantity": {"value": Decimal(4), "unit": "mg", "system": UCUM, "code": "mg"}}
        ],
    }
    draft["dosageInstruction"].append(day_15)
    dosages = _start_reduced(draft)["dosageInstruction"]
    assert [d["doseAndRate"][0]["doseQuantity"]["value"] for d in dosages] == [3, 3]
    assert [d["text"] for d in dosages] == ["ixazomib 3 mg by mouth"] * 2
    assert [d["timing"] for d in dosages] == [days_1_and_8["timing"], day_15["timing"]]


def test_overdose_is_caught_when_only_the_contained_ingredient_names_ixazomib() -> None:
    """A contained Medication coded only by its ingredient (no product code) is still
    ixazomib: 8 mg a week must not pass without a card."""
    draft = order(
        dose=8,
        id="draft",
        medication={
            "contained": [
                {
                    "resourceType": "Medication",
                    "id": "med",
                    "ingredient": [
                        {"itemCodeableConcept": concept(RXNORM, IXAZOMIB), "isActive": True}
                    ],
                }
            ],
            "medicationReference": {"reference": "#med"},
        },
    )
    card = one(
        sign(draft, record(history=[order(status="active", days_ago=60, dose=4)])), "overdose"
    )
    assert recommendation(card)["ixazomib"] == {"action": "correct-dose", "doseMg": 4}
    assert card["indicator"] == "critical"


def test_resolved_grade_2_neuropathy_during_a_long_standing_pain_condition_owes_a_reduction() -> (
    None
):
    """The pain Condition began 60 days ago and is still active; the Grade 2 neuropathy 10
    days ago was therefore with pain, and on resumption ixazomib goes one level lower."""
    rec = record(
        history=ON_IXAZOMIB,
        adverseEvents=[adverse_event(NEUROPATHY, 2, days_ago=10, outcome="resolved")],
        conditions=[{**pain_condition(), "onsetDateTime": when(60)}],
    )
    cards = sign(order(dose=4, id="draft"), rec)
    card = one(cards, "neuropathy-grade-2-pain-or-3")
    assert recommendation(card)["ixazomib"] == {"action": "reduce", "doseMg": 3}


def test_capsule_dose_is_read_from_the_ingredient_strength_of_an_uncoded_product() -> None:
    """Two capsules of a contained Medication that states 4 mg ixazomib per capsule in its
    ingredient (no product code) are 8 mg: an overdose, not an unreadable dose."""
    medication = {
        "resourceType": "Medication",
        "id": "med",
        "code": {"text": "ixazomib capsule"},
        "ingredient": [
            {
                "itemCodeableConcept": concept(RXNORM, IXAZOMIB),
                "strength": {
                    "numerator": {"value": 4, "unit": "mg", "system": UCUM, "code": "mg"},
                    "denominator": {
                        "value": 1,
                        "unit": "capsule",
                        "system": UCUM,
                        "code": "{capsule}",
                    },
                },
            }
        ],
    }
    draft = order(
        dose=2,
        unit="{capsule}",
        id="draft",
        medication={"contained": [medication], "medicationReference": {"reference": "#med"}},
    )
    cards = sign(draft, record(history=[order(status="active", days_ago=60, dose=4)]))
    card = one(cards, "overdose")
    assert recommendation(card)["ixazomib"] == {"action": "correct-dose", "doseMg": 4}
    assert "data-uninterpretable" not in rules_of(cards)
    dose = card["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"][0]
    assert dose["doseAndRate"][0]["doseQuantity"] == {
        "value": 4,
        "unit": "mg",
        "system": UCUM,
        "code": "mg",
    }


@pytest.mark.parametrize(
    "term",
    [
        "Lymphocyte count decreased",
        "Lymphopenia",
        "Pancytopenia",
        "Cytopenia",
        "Hemoglobin decreased",
        "Haemoglobin decreased",
        "Anemia",
        "Leucopenia",
        "White blood cell decreased",
        "Febrile neutropenia",
    ],
)
@pytest.mark.parametrize("grade", [2, 3])
def test_hematologic_adverse_event_is_not_an_other_non_hematologic_toxicity(
    term: str, grade: int
) -> None:
    # Hematologic toxicities are judged from the counts; the "other non-hematologic" row
    # (hold at Grade 3) and the new-cycle gate (Grade 2) must not take them.
    event = adverse_event(concept(NCIT, "C000000", term), grade)
    cards = sign(order(dose=4, id="draft"), record(history=ON_IXAZOMIB, adverseEvents=[event]))
    assert "other-toxicity-grade-3-4" not in rules_of(cards)
    assert "new-cycle-gate" not in rules_of(cards)
    assert not any(term.lower() in (card.get("detail") or "").lower() for card in cards)


@pytest.mark.parametrize("final_value", ["25", "150"])
def test_preliminary_result_overtaken_by_a_newer_final_one_of_the_same_lab_is_not_named(
    final_value: str,
) -> None:
    # Platelets (10*3/uL): a preliminary 20 at 06:00, then the final draw at 10:00.
    preliminary = lab(PLATELETS, "20", "10*3/uL", 0.5, status="preliminary", id="prelim")
    final = lab(PLATELETS, final_value, "10*3/uL", 0.3, id="final")
    cards = lab_result([preliminary, final], record(history=ON_REGIMEN, labs=good_cbc(2)))
    assert "data-uninterpretable" not in rules_of(cards)
    assert not any("Observation/prelim" in (card.get("detail") or "") for card in cards)
    if final_value == "25":
        assert rules_of(cards) == ["platelets-below-30k"]
        assert "Observation/final" in one(cards, "platelets-below-30k")["detail"]


def test_preliminary_result_newer_than_the_final_one_is_still_named() -> None:
    final = lab(PLATELETS, "150", "10*3/uL", 0.5, id="final")
    preliminary = lab(PLATELETS, "20", "10*3/uL", 0.3, status="preliminary", id="prelim")
    cards = lab_result([final, preliminary], record(history=ON_REGIMEN, labs=good_cbc(2)))
    card = one(cards, "data-uninterpretable")
    assert "platelets Observation/prelim (20 10*3/uL" in card["detail"]


def test_preliminary_result_is_named_beside_a_newer_final_one_of_another_lab() -> None:
    preliminary = lab(PLATELETS, "20", "10*3/uL", 0.5, status="preliminary", id="prelim")
    final_anc = lab(ANC, "2.0", "10*9/L", 0.3, id="anc-final")
    cards = lab_result([preliminary, final_anc], record(history=ON_REGIMEN, labs=good_cbc(2)))
    assert "Observation/prelim" in one(cards, "data-uninterpretable")["detail"]


def _resolved_diarrhoea(*suspects: JsonDict) -> JsonDict:
    event = adverse_event(DIARRHEA, 3, days_ago=10, outcome="resolved")
    event["suspectEntity"] = [
        {"instance": instance, "causality": [{"assessment": {"text": "Related"}}]}
        for instance in suspects
    ]
    return event


@pytest.mark.parametrize(
    "instance",
    [
        {"reference": "MedicationRequest/len"},  # the patient's lenalidomide order
        {"display": "lenalidomide"},
        {"reference": "MedicationAdministration/adm-7", "display": "Revlimid 25 mg"},
    ],
)
def test_resolved_grade_3_attributed_only_to_another_drug_resumes_at_the_same_dose(
    instance: JsonDict,
) -> None:
    cards = sign(
        order(dose=4, id="draft"),
        record(history=ON_REGIMEN, adverseEvents=[_resolved_diarrhoea(instance)]),
    )
    assert cards == []  # no review, no reduction: the 4 mg draft stands


def test_a_suspect_that_cannot_be_identified_still_asks_about_ixazomib() -> None:
    # A MedicationAdministration (not read by the service) may be an ixazomib dose.
    for suspects in (
        [{"reference": "MedicationAdministration/adm-7"}],
        [{"reference": "MedicationRequest/len"}, {"reference": "MedicationStatement/ms-1"}],
        [{"reference": "MedicationRequest/unknown-order"}],
    ):
        event = _resolved_diarrhoea(*suspects)
        cards = sign(order(dose=4, id="draft"), record(history=ON_REGIMEN, adverseEvents=[event]))
        card = one(cards, "other-toxicity-grade-3-4")
        assert recommendation(card)["ixazomib"] == {"action": "review"}


def test_ixazomib_among_the_suspects_is_still_attributed() -> None:
    event = _resolved_diarrhoea(
        {"reference": "MedicationRequest/len"}, {"reference": "MedicationRequest/ixa"}
    )
    cards = sign(order(dose=4, id="draft"), record(history=ON_REGIMEN, adverseEvents=[event]))
    assert recommendation(one(cards, "other-toxicity-grade-3-4"))["ixazomib"] == {
        "action": "reduce",
        "doseMg": 3,
    }


def test_an_ixazomib_order_known_only_by_name_is_ixazomib() -> None:
    # Named only in text ("Ninlaro 4 mg capsule"): the order is ixazomib (issue 12), so an
    # event attributed to it is attributed to ixazomib: one level lower on resumption.
    local = order(
        status="active",
        days_ago=30,
        id="ixa-local",
        medication={"medicationCodeableConcept": {"text": "Ninlaro 4 mg capsule"}},
    )
    event = _resolved_diarrhoea({"reference": "MedicationRequest/ixa-local"})
    cards = sign(
        order(dose=4, id="draft"), record(history=[*ON_REGIMEN, local], adverseEvents=[event])
    )
    card = one(cards, "other-toxicity-grade-3-4")
    assert recommendation(card)["ixazomib"] == {"action": "reduce", "doseMg": 3}


def test_an_ixazomib_medication_that_is_not_valid_fhir_is_still_checked() -> None:
    """A Medication (sent beside the order, as Epic does) with a member FHIR does not define:
    the order is still ixazomib, so an 8 mg overdose is caught and the Medication named."""
    medication = {
        "resourceType": "Medication",
        "id": "med",
        "foo": "bar",
        "code": concept(RXNORM, IXAZOMIB),
    }
    draft = order(
        dose=8, id="draft", medication={"medicationReference": {"reference": "Medication/med"}}
    )
    rec = record(history=[order(status="active", days_ago=60, dose=4)])
    rec = PatientRecord(resources=rec.resources, medications={"Medication/med": medication})
    cards = sign(draft, rec)
    assert recommendation(one(cards, "overdose"))["ixazomib"]["action"] == "correct-dose"
    assert "Medication/med" in one(cards, "data-uninterpretable")["detail"]


def test_lab_result_with_an_unreadable_ixazomib_history_is_not_silent() -> None:
    broken = {**order(status="active", days_ago=20, dose=4, id="ixa"), "foo": 1}
    new = platelets(20000, 0, id="new")
    cards = lab_result([new], record(history=[broken], labs=[new]))
    card = one(cards, "data-uninterpretable")
    assert recommendation(card)["ixazomib"] == {"action": "review"}
    assert "MedicationRequest/ixa" in card["detail"]


def _undated(resource: dict) -> dict:  # type: ignore[type-arg]
    """An order with no start: no authoredOn, no dosage bounds (both optional in FHIR)."""
    resource.pop("authoredOn")
    del resource["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"]
    return resource


def test_an_active_ixazomib_order_without_a_start_date_is_never_taken_as_off_ixazomib() -> None:
    """Its place in the dose history is unknown (a guessed date would count episodes wrongly),
    but the patient may be taking it today: a low count is not passed in silence, and the
    order is named."""
    undated = _undated(order(status="active", dose=4, id="ixa"))
    new = platelets(20000, 0, id="new")
    rec = record(history=[undated], labs=[anc(2000, 1), new])
    cards = lab_result([new], rec)
    card = one(cards, "data-uninterpretable")
    assert recommendation(card)["ixazomib"] == {"action": "review"}
    assert "MedicationRequest/ixa (ixazomib, active): no start date" in card["detail"]
    # Table 3 withholds at any occurrence: the hold is advised, the undated order put on hold;
    # which drug the recovery reduces is not guessed.
    hold = one(cards, "platelets-below-30k")
    assert recommendation(hold)["ixazomib"] == {"action": "hold"}
    assert "occurrence unknown: an ixazomib order has no start date" in hold["detail"]
    (suggestion,) = hold["suggestions"]
    (action,) = suggestion["actions"]
    assert action["resource"]["id"] == "ixa"
    assert action["resource"]["status"] == "on-hold"
    assert patient_view(rec)[0]["summary"].startswith("Ixazomib course unknown")
    # At order-sign the earlier order is history all the same: not a new start in silence.
    cards = sign(order(dose=4, id="d"), rec)
    assert (
        "no start date (authoredOn or dosage bounds): MedicationRequest/ixa"
        in (one(cards, "data-unavailable")["detail"])
    )
    assert "platelets-below-30k" in rules_of(cards)


def test_a_medication_whose_codings_are_not_a_list_is_read_without_error() -> None:
    medication = {"resourceType": "Medication", "id": "med", "code": {"coding": 5}, "ingredient": 1}
    draft = order(
        dose=4,
        id="draft",
        medication={"contained": [medication], "medicationReference": {"reference": "#med"}},
    )
    cards = sign(draft, record(history=[]))
    assert all(recommendation(c)["ixazomib"]["action"] == "review" for c in cards)
