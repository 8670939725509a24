"""Toxicity episodes across records, the dose an episode began on, and the gates around them.

Each case is one the label decides and that a simpler reading of the data gets wrong: a
Grade 4 that has since improved, a Grade 3 now at Grade 2, a rash recorded twice, a
reduction ordered during the hold, a Grade 2 toxicity at a new cycle.
"""

from __future__ import annotations

from .builders import (
    DIARRHEA,
    LENALIDOMIDE,
    NEUROPATHY,
    RASH,
    adverse_event,
    concept,
    good_cbc,
    lab_result,
    one,
    order,
    platelets,
    recommendation,
    record,
    rules_of,
    sign,
)
from .test_toxicities import HISTORY, graded_observation, sign_with

NINLARO_3MG = "1723767"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def test_grade_4_rash_that_has_resolved_still_discontinues_the_regimen() -> None:
    cards = sign_with([adverse_event(RASH, 4, days_ago=20, outcome="resolved")])
    card = one(cards, "rash-grade-4")
    assert recommendation(card)["ixazomib"] == {"action": "discontinue"}
    assert recommendation(card)["lenalidomide"] == {"action": "discontinue"}
    assert card["suggestions"][0]["actions"][0] == {
        "type": "delete",
        "description": "Remove the draft MedicationRequest/draft",
        "resourceId": "MedicationRequest/draft",
    }


def test_grade_4_neuropathy_now_at_grade_3_discontinues_not_holds() -> None:
    series = [graded_observation(NEUROPATHY, 4, 10), graded_observation(NEUROPATHY, 3, 3)]
    cards = sign_with(toxicityObservations=series)
    assert recommendation(one(cards, "neuropathy-grade-4"))["ixazomib"] == {"action": "discontinue"}
    assert "neuropathy-grade-2-pain-or-3" not in rules_of(cards)


def test_grade_4_neuropathy_before_ixazomib_started_and_resolved_is_not_this_course() -> None:
    cards = sign_with([adverse_event(NEUROPATHY, 4, days_ago=300, outcome="resolved")])
    assert "neuropathy-grade-4" not in rules_of(cards)


def test_grade_3_neuropathy_improving_to_grade_2_keeps_the_grade_3_row() -> None:
    series = [graded_observation(NEUROPATHY, 3, 10), graded_observation(NEUROPATHY, 2, 3)]
    card = one(sign_with(toxicityObservations=series), "neuropathy-grade-2-pain-or-3")
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    assert "Grade 3" in card["summary"]
    assert "3 mg" in card["detail"]  # resumes one level lower
    assert "latest:" in card["detail"]  # the Grade 2 it is at now is shown too


def test_other_grade_3_improving_to_grade_2_is_still_withheld() -> None:
    series = [graded_observation(DIARRHEA, 3, 10), graded_observation(DIARRHEA, 2, 3)]
    card = one(sign_with(toxicityObservations=series), "other-toxicity-grade-3-4")
    assert recommendation(card)["ixazomib"] == {"action": "hold"}


def test_one_rash_recorded_twice_while_open_is_not_a_recurrence() -> None:
    events = [adverse_event(RASH, 2, days_ago=8), adverse_event(RASH, 3, days_ago=3)]
    card = one(sign_with(events), "rash-grade-2-3")
    assert recommendation(card)["lenalidomide"] == {"action": "hold"}
    assert recommendation(card)["ixazomib"]["action"] == "resume"  # ixazomib continues
    assert "occurrence 1" in card["detail"]


def test_rash_after_an_earlier_resolved_rash_is_a_recurrence() -> None:
    events = [
        adverse_event(RASH, 2, days_ago=60, outcome="resolved"),
        adverse_event(RASH, 2, days_ago=3),
    ]
    card = one(sign_with(events), "rash-grade-2-3")
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    assert recommendation(card)["lenalidomide"] == {"action": "hold"}


def test_reduction_ordered_during_the_hold_is_not_reduced_again() -> None:
    """2nd platelet episode (ixazomib's turn): the prescriber ordered 3 mg during the hold,
    before the recovery result. 3 mg is the reduction; 2.3 mg would be a second one."""
    history = [
        order(status="completed", days_ago=120, dose=4),
        order(code=LENALIDOMIDE, status="active", days_ago=120, dose=25),
        order(code=LENALIDOMIDE, status="active", days_ago=80, dose=20),
        order(status="on-hold", days_ago=10, dose=3),  # written during the hold
    ]
    labs = [
        platelets(25000, 100),
        platelets(90000, 90),  # 1st episode recovered: lenalidomide 25 -> 20
        platelets(22000, 14),
        platelets(100000, 1),  # 2nd recovered: ixazomib 4 -> 3
        *good_cbc(1)[:1],
    ]
    cards = sign(order(dose=3, id="draft"), record(history=history, labs=labs))
    # The draft already makes the reduction owed: nothing to change, nothing to say.
    assert cards == []
    # A 4 mg draft is corrected to 3 mg, not 2.3 mg.
    cards = sign(order(dose=4, id="draft"), record(history=history, labs=labs))
    card = one(cards, "platelets-below-30k")
    assert recommendation(card)["ixazomib"] == {"action": "reduce", "doseMg": 3}
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["id"] == "draft"
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 3


def test_second_recovery_at_the_lab_hook_counts_from_the_dose_at_onset() -> None:
    history = [
        order(status="active", days_ago=120, dose=4),
        order(code=LENALIDOMIDE, status="active", days_ago=120, dose=25),
        order(status="on-hold", days_ago=10, dose=3),
    ]
    labs = [platelets(25000, 100), platelets(90000, 90), platelets(22000, 14)]
    new = platelets(60000, 0, id="new")
    card = one(lab_result([new], record(history=history, labs=[*labs, new])), "platelets-below-30k")
    assert recommendation(card)["ixazomib"] == {"action": "reduce", "doseMg": 3}


def test_other_grade_2_toxicity_at_a_new_cycle_asks_for_review() -> None:
    cards = sign_with([adverse_event(DIARRHEA, 2, days_ago=3)])
    card = one(cards, "new-cycle-gate")
    assert recommendation(card)["ixazomib"] == {"action": "review"}
    assert "Grade 2" in card["summary"]
    assert "other-toxicity-grade-3-4" not in rules_of(cards)


def test_other_grade_1_toxicity_does_not_hold_up_the_cycle() -> None:
    assert sign_with([adverse_event(DIARRHEA, 1, days_ago=3)]) == []


def test_resolved_grade_3_without_attribution_asks_who_caused_it() -> None:
    cards = sign_with([adverse_event(DIARRHEA, 3, days_ago=10, outcome="resolved")])
    card = one(cards, "other-toxicity-grade-3-4")
    assert recommendation(card)["ixazomib"] == {"action": "review"}
    assert "3 mg" in card["detail"]  # if attributable
    assert "4 mg" in card["detail"]  # if not


def test_resolved_grade_3_ruled_out_as_ixazomib_resumes_silently() -> None:
    event = adverse_event(
        DIARRHEA, 3, days_ago=10, outcome="resolved", suspect="MedicationRequest/ixa", related=False
    )
    assert sign_with([event]) == []


def test_dose_ordered_as_a_capsule_of_another_strength_is_corrected() -> None:
    draft = order(
        dose=4, id="draft", medication={"medicationCodeableConcept": concept(RXNORM, NINLARO_3MG)}
    )
    card = one(sign(draft, record(history=HISTORY)), "dose-not-labelled")
    assert recommendation(card)["ixazomib"] == {"action": "correct-dose", "doseMg": 4}
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["medicationCodeableConcept"]["coding"][0]["code"] == "1723772"  # Ninlaro 4 mg
    assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 4


def test_weekly_for_four_doses_in_a_row_is_corrected_to_three() -> None:
    timing = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk", "count": 4}}
    draft = order(dose=4, id="draft", timing=timing)
    card = one(sign(draft, record(history=HISTORY)), "dose-not-labelled")
    assert recommendation(card)["ixazomib"] == {"action": "correct-dose", "doseMg": 4}
    resource = card["suggestions"][0]["actions"][0]["resource"]
    assert resource["dosageInstruction"][0]["timing"]["repeat"]["count"] == 3


def test_weekly_for_three_doses_is_the_labelled_schedule() -> None:
    timing = {"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk", "count": 3}}
    assert sign(order(dose=4, id="draft", timing=timing), record(history=HISTORY)) == []
