"""Where in the course an order or a result falls: mid-cycle or a new cycle, off treatment,
filed late, at baseline, with an unreadable history, or signed with a lenalidomide order."""

from __future__ import annotations

from cds_service.rules.inputs import PatientRecord

from .builders import (
    DIARRHEA,
    LENALIDOMIDE,
    NEUROPATHY,
    RASH,
    adverse_event,
    anc,
    good_cbc,
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

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def test_resuming_within_the_cycle_needs_only_the_hold_threshold() -> None:
    """Platelets fell on day 8 and recovered to 45,000: the remaining doses of the cycle may
    be given (>= 30,000); the new-cycle 75,000 applies to the next cycle only."""
    history = [order(status="on-hold", days_ago=10, dose=4)]
    labs = [platelets(22000, 4), platelets(45000, 1), anc(1500, 1)]
    cards = sign(order(dose=4, id="draft"), record(history=history, labs=labs))
    assert "new-cycle-gate" not in rules_of(cards)
    assert all(recommendation(c)["ixazomib"]["action"] != "hold" for c in cards)


def test_an_order_three_weeks_after_the_last_is_a_new_cycle() -> None:
    history = [order(status="completed", days_ago=25, dose=4)]
    labs = [platelets(45000, 1), anc(1500, 1)]
    card = one(
        sign(order(dose=4, id="draft"), record(history=history, labs=labs)), "new-cycle-gate"
    )
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    assert "25 days after the last ixazomib order" in card["detail"]


def test_lab_result_for_a_patient_off_ixazomib_says_nothing() -> None:
    history = [order(status="stopped", days_ago=240, dose=4)]
    new = platelets(20000, 0, id="new")
    assert lab_result([new], record(history=history, labs=[new])) == []


def test_lab_result_for_a_patient_between_cycles_still_holds() -> None:
    history = [order(status="completed", days_ago=30, dose=4)]
    new = platelets(20000, 0, id="new")
    card = one(lab_result([new], record(history=history, labs=[new])), "platelets-below-30k")
    assert recommendation(card)["ixazomib"] == {"action": "hold"}


def test_a_low_result_filed_after_a_later_normal_one_does_not_hold() -> None:
    history = [order(status="active", days_ago=20, dose=4)]
    late = platelets(24000, 3, id="late")
    rec = record(history=history, labs=[platelets(160000, 1), late])
    assert lab_result([late], rec) == []


def test_grade_2_toxicity_unchanged_since_before_ixazomib_is_its_baseline() -> None:
    history = [order(status="completed", days_ago=30, dose=4)]
    events = [adverse_event(DIARRHEA, 2, days_ago=60), adverse_event(DIARRHEA, 2, days_ago=3)]
    cards = sign(order(dose=4, id="draft"), record(history=history, adverseEvents=events))
    assert cards == []


def test_grade_2_neuropathy_present_before_ixazomib_and_no_worse_is_not_withheld() -> None:
    history = [order(status="completed", days_ago=30, dose=4)]
    events = [adverse_event(NEUROPATHY, 2, days_ago=60)]  # from earlier bortezomib, ongoing
    cards = sign(order(dose=4, id="draft"), record(history=history, adverseEvents=events))
    assert not [r for r in rules_of(cards) if r.startswith("neuropathy")]


def test_neuropathy_worse_than_its_baseline_is_withheld() -> None:
    history = [order(status="completed", days_ago=30, dose=4)]
    events = [adverse_event(NEUROPATHY, 1, days_ago=60), adverse_event(NEUROPATHY, 2, days_ago=5)]
    cards = sign(order(dose=4, id="draft"), record(history=history, adverseEvents=events))
    assert recommendation(one(cards, "neuropathy-grade-1-pain-or-2"))["ixazomib"] == {
        "action": "hold"
    }


def test_unreadable_earlier_orders_do_not_make_a_new_start() -> None:
    """Earlier orders name a Medication that could not be read: the patient may be on
    ixazomib already, so no starting-dose advice is given, and the card says why."""
    unresolved = {"medicationReference": {"reference": "Medication/ninlaro-4mg"}}
    history = [order(status="completed", days_ago=30, medication=unresolved)]
    rec = record(history=history, labs=[*good_cbc(), lab("1975-2", "2.5", "mg/dL", 2)])
    rec = PatientRecord(
        resources=rec.resources,
        unavailable={"medications": "Medication/ninlaro-4mg: no FHIR server to read it from"},
    )
    cards = sign(order(dose=4, id="draft"), rec)
    actions = [recommendation(c)["ixazomib"]["action"] for c in cards]
    assert "start-reduced" not in actions
    assert "hepatic-start-dose" not in rules_of(cards)
    assert any(c["summary"].startswith("Earlier orders could not be identified") for c in cards)


def test_a_hold_also_removes_a_lenalidomide_draft_signed_with_it() -> None:
    history = [
        order(status="completed", days_ago=30, dose=4),
        order(code=LENALIDOMIDE, status="completed", days_ago=30, dose=25),
    ]
    drafts = [order(dose=4, id="ixa"), order(code=LENALIDOMIDE, dose=25, id="len")]
    rec = record(history=history, labs=[platelets(20000, 1), anc(1500, 1)])
    card = one(sign(drafts, rec), "platelets-below-30k")
    deleted = [a["resourceId"] for a in card["suggestions"][0]["actions"]]
    assert deleted == ["MedicationRequest/ixa", "MedicationRequest/len"]
    assert (
        card["suggestions"][0]["label"] == "Hold: do not sign the ixazomib and lenalidomide orders"
    )


def test_first_rash_removes_only_the_lenalidomide_draft() -> None:
    history = [
        order(status="completed", days_ago=30, dose=4),
        order(code=LENALIDOMIDE, status="completed", days_ago=30, dose=25),
    ]
    drafts = [order(dose=4, id="ixa"), order(code=LENALIDOMIDE, dose=25, id="len")]
    rec = record(history=history, adverseEvents=[adverse_event(RASH, 2, days_ago=3)])
    card = one(sign(drafts, rec), "rash-grade-2-3")
    assert recommendation(card)["lenalidomide"] == {"action": "hold"}
    deleted = [a["resourceId"] for a in card["suggestions"][0]["actions"]]
    assert deleted == ["MedicationRequest/len"]


def test_a_lenalidomide_reduction_signed_with_the_ixazomib_order_is_not_advised_again() -> None:
    history = [
        order(status="completed", days_ago=40, dose=4),
        order(code=LENALIDOMIDE, status="completed", days_ago=40, dose=25),
    ]
    labs = [platelets(25000, 20), platelets(100000, 2), anc(1500, 2)]
    rec = record(history=history, labs=labs)
    alone = sign(order(dose=4, id="ixa"), rec)
    assert recommendation(one(alone, "platelets-below-30k"))["lenalidomide"] == {
        "action": "reduce",
        "doseMg": 20,
    }
    together = sign([order(dose=4, id="ixa"), order(code=LENALIDOMIDE, dose=20, id="len")], rec)
    assert "platelets-below-30k" not in rules_of(together)


def test_a_low_count_is_not_passed_over_when_the_orders_medication_could_not_be_read() -> None:
    """The lab-result hook is silent for a patient who takes no ixazomib, but an active order
    whose Medication could not be fetched may be ixazomib: that is not "takes no ixazomib"."""
    unresolved = {"medicationReference": {"reference": "Medication/ninlaro-4mg"}}
    history = [order(status="active", days_ago=5, medication=unresolved)]
    rec = record(history=history)
    rec = PatientRecord(
        resources=rec.resources,
        unavailable={"medications": "Medication/ninlaro-4mg: no FHIR server to read it from"},
    )
    cards = lab_result([anc(300, 0)], rec)
    assert cards, "a new ANC of 300 was passed over in silence"
    assert any("Medication/ninlaro-4mg" in (c.get("detail") or "") for c in cards)
