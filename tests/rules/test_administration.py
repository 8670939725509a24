"""The label's administration instructions (section 2.1) travel with every order the service
writes: what the pharmacist and the patient read in the suggested order."""

from __future__ import annotations

import copy
from datetime import UTC
from decimal import Decimal

from fhir.resources.R4B.medicationrequest import MedicationRequest

from cds_service.rules.administration import PATIENT_INSTRUCTION, markdown
from cds_service.rules.cards import with_dose
from cds_service.rules.facts.orders import read_order
from cds_service.rules.facts.reading import Problems
from cds_service.rules.inputs import JsonDict

from .builders import (
    SNOMED,
    anc,
    good_cbc,
    lab,
    lab_result,
    one,
    order,
    platelets,
    recommendation,
    record,
    sign,
)

BILIRUBIN = "1975-2"
HISTORY = [order(status="active", days_ago=200, dose=4, id="ixa")]
# SNOMED CT additional dosage instructions (FHIR value set additional-instruction-codes).
SWALLOW_WHOLE, EMPTY_STOMACH = "418693002", "717154004"


def _update(card: JsonDict) -> JsonDict:
    (suggestion,) = card["suggestions"]
    (action,) = suggestion["actions"]
    assert action["type"] == "update"
    MedicationRequest.model_validate(action["resource"])  # still a valid FHIR R4 resource
    return action["resource"]  # type: ignore[no-any-return]


def _start_reduced(draft: JsonDict) -> JsonDict:
    bilirubin = lab(BILIRUBIN, "2.5", "mg/dL", 2, high={"value": Decimal("1.2"), "unit": "mg/dL"})
    card = one(sign(draft, record(labs=[*good_cbc(), bilirubin])), "hepatic-start-dose")
    assert recommendation(card)["ixazomib"] == {"action": "start-reduced", "doseMg": 3}
    return _update(card)


def _reduced(draft: JsonDict) -> JsonDict:
    """The second ANC < 500 episode has recovered: ixazomib goes to 3 mg (label Table 3)."""
    labs = [anc(400, 190), anc(1500, 185), anc(400, 170), anc(1500, 165)]
    labs += [anc(2000, 1), platelets(200000, 1)]
    card = one(sign(draft, record(history=HISTORY, labs=labs)), "anc-below-500")
    assert recommendation(card)["ixazomib"] == {"action": "reduce", "doseMg": 3}
    return _update(card)


def _corrected(draft: JsonDict) -> JsonDict:
    draft["dosageInstruction"][0]["timing"] = {
        "repeat": {"frequency": 2, "period": 1, "periodUnit": "wk"}
    }
    card = one(sign(draft, record(history=HISTORY)), "overdose")
    assert recommendation(card)["ixazomib"] == {"action": "correct-dose", "doseMg": 4}
    return _update(card)


def _codes(dosage: JsonDict) -> list[str]:
    return [
        coding["code"]
        for extra in dosage.get("additionalInstruction", [])
        for coding in extra.get("coding", [])
        if coding.get("system") == SNOMED
    ]


def test_every_dose_writing_suggestion_carries_the_label_instructions() -> None:
    for suggest in (_start_reduced, _reduced, _corrected):
        (dosage,) = suggest(order(dose=4, id="new"))["dosageInstruction"]
        assert dosage["patientInstruction"] == PATIENT_INSTRUCTION, suggest.__name__
        assert _codes(dosage) == [SWALLOW_WHOLE, EMPTY_STOMACH], suggest.__name__
        # The contract: the new dose is where it always was.
        assert dosage["doseAndRate"][0]["doseQuantity"]["code"] == "mg"


def test_the_patient_reads_each_instruction_of_the_label() -> None:
    (dosage,) = _start_reduced(order(dose=4, id="new"))["dosageInstruction"]
    said = dosage["patientInstruction"].lower()
    for fact in (
        "swallow the capsule whole with water",
        "do not crush, chew or open",
        "empty stomach",
        "at least 1 hour before or at least 2 hours after food",
        "dexamethasone",
        "not take the two at the same time",
        "72 hours",
        "never take a double dose",
        "vomit",
        "same day of the week",
    ):
        assert fact in said
    by_code = {
        coding["code"]: extra["text"]
        for extra in dosage["additionalInstruction"]
        for coding in extra["coding"]
    }
    assert by_code[SWALLOW_WHOLE].startswith("Swallow the capsule whole")
    assert by_code[EMPTY_STOMACH].startswith("Take it on an empty stomach")


def test_each_dosage_of_a_split_order_carries_them() -> None:
    # Days 1 and 8 in one instruction, day 15 in another: both are doses of ixazomib.
    draft = order(dose=4, id="new")
    draft["dosageInstruction"].append(copy.deepcopy(draft["dosageInstruction"][0]))
    draft["dosageInstruction"][1]["sequence"] = 2
    dosages = _start_reduced(draft)["dosageInstruction"]
    assert len(dosages) == 2
    for dosage in dosages:
        assert dosage["patientInstruction"] == PATIENT_INSTRUCTION
        assert _codes(dosage) == [SWALLOW_WHOLE, EMPTY_STOMACH]


def test_the_prescribers_own_instructions_stay_first() -> None:
    draft = order(dose=4, id="new")
    own_extra = {"text": "Keep in the original package"}
    draft["dosageInstruction"][0]["patientInstruction"] = "Take on Monday mornings"
    draft["dosageInstruction"][0]["additionalInstruction"] = [own_extra]
    (dosage,) = _reduced(draft)["dosageInstruction"]
    assert dosage["patientInstruction"] == f"Take on Monday mornings\n{PATIENT_INSTRUCTION}"
    assert dosage["additionalInstruction"][0] == own_extra
    assert _codes(dosage) == [SWALLOW_WHOLE, EMPTY_STOMACH]


def test_instructions_the_draft_already_has_are_not_repeated() -> None:
    draft = order(dose=4, id="new")
    dosage = draft["dosageInstruction"][0]
    dosage["patientInstruction"] = PATIENT_INSTRUCTION
    dosage["additionalInstruction"] = [
        # the same SNOMED CT code, sent by its OID
        {"coding": [{"system": "urn:oid:2.16.840.1.113883.6.96", "code": SWALLOW_WHOLE}]},
        # the same instruction in words, uncoded
        {"text": "Take on an empty stomach, at least 1 hour before or 2 hours after food"},
    ]
    (new,) = _start_reduced(draft)["dosageInstruction"]
    assert new["patientInstruction"] == PATIENT_INSTRUCTION
    assert new["additionalInstruction"] == dosage["additionalInstruction"]


def test_an_instruction_that_says_otherwise_does_not_count_as_the_labels() -> None:
    draft = order(dose=4, id="new")
    contrary = {"text": "Do not take on an empty stomach"}
    draft["dosageInstruction"][0]["additionalInstruction"] = [contrary]
    (dosage,) = _start_reduced(draft)["dosageInstruction"]
    assert dosage["additionalInstruction"][0] == contrary  # the prescriber's, for review
    assert _codes(dosage) == [SWALLOW_WHOLE, EMPTY_STOMACH]


def test_a_malformed_instruction_entry_gives_way() -> None:
    # Entries that are not CodeableConcepts (how they get past reading depends on the reader:
    # here they are put in after it) must not make the update invalid FHIR.
    read = read_order(order(dose=4, id="new"), {}, UTC, Problems())
    assert read is not None
    read.raw["dosageInstruction"][0]["additionalInstruction"] = ["empty stomach", 7]
    update = with_dose(read, Decimal(3), fix_frequency=False)
    MedicationRequest.model_validate(update)
    (dosage,) = update["dosageInstruction"]
    assert _codes(dosage) == [SWALLOW_WHOLE, EMPTY_STOMACH]
    assert len(dosage["additionalInstruction"]) == 2


def test_applying_the_suggestion_twice_changes_nothing_more() -> None:
    once = _start_reduced(order(dose=4, id="new"))
    read = read_order(once, {}, UTC, Problems())
    assert read is not None
    twice = with_dose(read, Decimal(3), fix_frequency=False)
    assert twice["dosageInstruction"] == once["dosageInstruction"]


def test_an_order_that_is_otherwise_right_is_not_interrupted() -> None:
    # No instructions at all, and nothing else wrong: no card just to add them.
    draft = order(dose=4, id="new")
    assert "patientInstruction" not in draft["dosageInstruction"][0]
    assert sign(draft, record(history=HISTORY, labs=good_cbc())) == []


def test_hold_updates_change_only_the_status() -> None:
    # Putting active orders on hold is not a new order: nothing but the status changes.
    cards = lab_result([platelets(20000, 0)], record(history=HISTORY, labs=good_cbc(3)))
    (card,) = [c for c in cards if c.get("suggestions")]
    for action in card["suggestions"][0]["actions"]:
        assert action["resource"] == {**HISTORY[0], "status": "on-hold"}


def test_a_card_can_show_the_instructions_with_their_label_section() -> None:
    shown = markdown()
    assert shown.startswith("**How to take ixazomib (label, section 2.1):**")
    for sentence in PATIENT_INSTRUCTION.split(". "):
        assert sentence.rstrip(".") in shown
