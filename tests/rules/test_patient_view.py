"""patient-view: one course card for a patient on ixazomib, silence for anyone else.

The course is what the order and lab hooks compute; these tests hold the card to what a
clinician opening the chart must see: the dose level and each reduction with its date and rule,
holds in force and what ends them, the cycle and day, the next dose, the new-cycle gate, the
starting-dose factors, data that could not be read, and how to take ixazomib. The indicator is
warning or critical only when something is due now.
"""

from __future__ import annotations

from datetime import timedelta

from cds_service.rules.administration import markdown
from cds_service.rules.inputs import PatientRecord

from .builders import (
    LENALIDOMIDE,
    LOINC,
    NEUROPATHY,
    NOW,
    PLATELETS,
    SNOMED,
    adverse_event,
    anc,
    concept,
    good_cbc,
    lab,
    order,
    patient_view,
    platelets,
    recommendation,
    record,
    when,
)


def _cycle(days_ago: float, ixazomib: float, lenalidomide: float, status: str) -> list[dict]:
    return [
        order(dose=ixazomib, status=status, days_ago=days_ago),
        order(code=LENALIDOMIDE, dose=lenalidomide, status=status, days_ago=days_ago),
    ]


# Three cycles 28 days apart; the current one began 5 days ago (day 6).
TWO_REDUCTIONS = [
    *_cycle(61, 4, 25, "completed"),
    *_cycle(33, 4, 20, "completed"),
    *_cycle(5, 3, 20, "active"),
]
# Platelet episodes: the 1st recovered 50 days ago (lenalidomide 25 -> 20), the 2nd 10 days
# ago (ixazomib 4 -> 3).
TWO_EPISODES = [
    *good_cbc(62),
    platelets(25000, 55),
    platelets(80000, 50),
    platelets(28000, 15),
    platelets(90000, 10),
    anc(1800, 6),
    platelets(150000, 6),
]


def _day(days_ago: float) -> str:
    return f"{NOW - timedelta(days=days_ago):%Y-%m-%d}"


def test_the_course_card_shows_each_reduction_with_its_date_rule_and_data() -> None:
    (card,) = patient_view(record(history=TWO_REDUCTIONS, labs=TWO_EPISODES))
    assert card["indicator"] == "info"
    assert card["summary"] == "Ixazomib 3 mg, cycle 3 day 6: nothing due now"
    detail = card["detail"]
    assert "- ixazomib: 3 mg; next lower level 2.3 mg (started at 4 mg on" in detail
    assert "- lenalidomide: 20 mg" in detail
    assert (
        f"- {_day(50)}: lenalidomide 25 mg -> 20 mg, after platelets episode 1 (lowest "
        f"25,000/mm3) recovered {_day(50)} (rule platelets-below-30k" in detail
    )
    assert (
        f"- {_day(10)}: ixazomib 4 mg -> 3 mg, after platelets episode 2 (lowest 28,000/mm3) "
        f"recovered {_day(10)} (rule platelets-below-30k" in detail
    )
    # The orders that made the reductions, in time order after them.
    assert detail.index("ixazomib 4 mg -> 3 mg") < detail.index("dose ordered: ixazomib")
    assert "**Holds in force:**\n- none" in detail


def test_a_course_card_that_advises_nothing_carries_no_recommendation() -> None:
    """The contract asks the recommendation of cards with advice; an overview is not one."""
    (card,) = patient_view(record(history=TWO_REDUCTIONS, labs=TWO_EPISODES))
    assert "extension" not in card
    assert "suggestions" not in card
    assert "overrideReasons" not in card
    assert card["uuid"]
    assert card["source"]["label"].startswith("NINLARO (ixazomib) US prescribing information")


def test_the_cycle_day_and_the_next_dose() -> None:
    (card,) = patient_view(record(history=TWO_REDUCTIONS, labs=TWO_EPISODES))
    assert "- cycle 3, day 6; the cycle began" in card["detail"]
    # Day 8 of a cycle that began 5 days ago is in 2 days.
    assert f"- ixazomib 3 mg on day 8 of cycle 3, {_day(-2)}" in card["detail"]


def test_after_day_15_the_next_dose_is_the_next_cycle_once_the_gate_is_met() -> None:
    history = [*_cycle(20, 4, 25, "active")]
    (card,) = patient_view(record(history=history, labs=good_cbc(1)))
    assert "cycle 1, day 21" in card["detail"]
    assert (
        f"ixazomib 4 mg on day 1 of cycle 2, from {_day(-8)}, once the new-cycle gate"
        in (card["detail"])
    )


def test_the_new_cycle_gate_shows_the_latest_counts_and_whether_they_meet_it() -> None:
    labs = [anc(800, 2), platelets(60000, 2)]
    (card,) = patient_view(record(history=_cycle(10, 4, 25, "active"), labs=labs))
    detail = card["detail"]
    assert "- ANC >= 1,000/mm3: NOT met by the latest, ANC: 0.8 10*3/uL (= 800/mm3)" in detail
    assert "- platelets >= 75,000/mm3: NOT met by the latest, platelets: 60 10*3/uL" in detail
    # Nothing is due now: the gate waits for the next cycle's first day.
    assert card["indicator"] == "info"


def test_a_stale_count_is_named_at_the_gate() -> None:
    (card,) = patient_view(record(history=_cycle(10, 4, 25, "active"), labs=good_cbc(9)))
    assert "older than 7 days: a new count is needed before day 1" in card["detail"]


def test_a_hold_in_force_is_critical_and_says_what_ends_it() -> None:
    labs = [*good_cbc(12), anc(1500, 1), platelets(22000, 1)]
    (card,) = patient_view(record(history=_cycle(10, 4, 25, "active"), labs=labs))
    assert card["indicator"] == "critical"
    assert recommendation(card) == {
        "rule": "platelets-below-30k",
        "ixazomib": {"action": "hold"},
        "lenalidomide": {"action": "hold"},
    }
    assert card["summary"].startswith("Ixazomib course, cycle 1 day 11: platelets 22,000/mm3")
    assert (
        "until platelets >= 30,000/mm3; latest 22,000/mm3 on "
        f"{(NOW - timedelta(days=1)):%Y-%m-%d %H:%M} UTC" in card["detail"]
    )
    assert "- none while ixazomib is withheld" in card["detail"]
    # The suggestion puts the active regimen orders on hold, as at the lab-result hook.
    (suggestion,) = card["suggestions"]
    assert {a["resource"]["status"] for a in suggestion["actions"]} == {"on-hold"}
    assert len(suggestion["actions"]) == 2


def test_a_toxicity_hold_says_how_it_ends() -> None:
    events = [adverse_event(NEUROPATHY, 3, days_ago=3)]
    rec = record(history=_cycle(10, 4, 25, "active"), adverseEvents=events)
    (card,) = patient_view(rec)
    assert card["indicator"] == "critical"
    assert recommendation(card)["rule"] == "neuropathy-grade-2-pain-or-3"
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    assert "resume one level lower: 3 mg" in card["detail"]


def test_a_reduction_not_yet_in_an_order_is_a_warning() -> None:
    """The 2nd platelet episode recovered after the current order began at 4 mg: the next
    doses are due at 3 mg, and no order says so."""
    history = [*_cycle(33, 4, 25, "completed"), *_cycle(5, 4, 20, "active")]
    labs = [
        *good_cbc(34),
        platelets(25000, 30),
        platelets(80000, 28),
        platelets(28000, 4),
        platelets(90000, 2),
        anc(1800, 2),
    ]
    (card,) = patient_view(record(history=history, labs=labs))
    assert card["indicator"] == "warning"
    assert recommendation(card) == {
        "rule": "platelets-below-30k",
        "ixazomib": {"action": "reduce", "doseMg": 3},
    }
    assert "ixazomib 3 mg (latest order 4 mg)" in card["summary"]


def test_a_discontinuation_owed_is_critical() -> None:
    """Started at 2.3 mg; the 2nd platelet episode owes ixazomib a level below 2.3 mg."""
    history = [*_cycle(33, 2.3, 25, "completed"), *_cycle(5, 2.3, 20, "active")]
    labs = [
        *good_cbc(34),
        platelets(25000, 30),
        platelets(80000, 28),
        platelets(28000, 4),
        platelets(90000, 2),
        anc(1800, 2),
    ]
    (card,) = patient_view(record(history=history, labs=labs))
    assert card["indicator"] == "critical"
    assert recommendation(card)["ixazomib"] == {"action": "discontinue"}
    assert "- none: ixazomib is to be discontinued" in card["detail"]
    assert "ixazomib: none (no dose level below 2.3 mg: discontinue)" in card["detail"]


def test_pregnancy_is_a_discontinuation_owed() -> None:
    status = {
        "resourceType": "Observation",
        "id": "preg",
        "status": "final",
        "code": concept(LOINC, "82810-3"),
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when(1),
        "valueCodeableConcept": concept(SNOMED, "77386006"),
    }
    rec = record(history=_cycle(10, 4, 25, "active"), labs=[*good_cbc(), status])
    (card,) = patient_view(rec)
    assert card["indicator"] == "critical"
    assert recommendation(card)["rule"] == "pregnancy"


def test_silent_for_a_patient_not_on_ixazomib() -> None:
    lenalidomide_only = [order(code=LENALIDOMIDE, dose=25, status="active", days_ago=5)]
    assert patient_view(record(history=lenalidomide_only)) == []
    assert patient_view(record(history=[])) == []


def test_silent_once_ixazomib_ended_two_cycles_ago() -> None:
    """The lab hook's reading of "on ixazomib": an order active or on hold, or one begun
    within two cycles."""
    assert patient_view(record(history=_cycle(90, 4, 25, "completed"))) == []
    assert len(patient_view(record(history=_cycle(40, 4, 25, "completed")))) == 1


def test_data_that_could_not_be_read_are_named_and_advised_for_review() -> None:
    labs = [*good_cbc(2), lab(PLATELETS, "20", "cells/hpf", 1, system=None)]
    (card,) = patient_view(record(history=_cycle(10, 4, 25, "active"), labs=labs))
    assert card["indicator"] == "info"  # nothing is due now
    assert recommendation(card) == {
        "rule": "data-uninterpretable",
        "ixazomib": {"action": "review"},
    }
    assert "**Data the service could not read or fetch:**" in card["detail"]
    assert "cells/hpf" in card["detail"]


def test_when_the_regimen_orders_cannot_be_read_the_card_says_so() -> None:
    """Whether the patient is on ixazomib is unknown: silence would pass it as "not on it"."""
    unresolved = {"medicationReference": {"reference": "Medication/ninlaro-4mg"}}
    history = [order(status="active", days_ago=10, medication=unresolved)]
    rec = record(history=history)
    rec = PatientRecord(
        resources=rec.resources,
        unavailable={"medications": "Medication/ninlaro-4mg: no FHIR server to read it from"},
    )
    (card,) = patient_view(rec)
    assert card["indicator"] == "info"
    assert recommendation(card) == {"rule": "data-unavailable", "ixazomib": {"action": "review"}}
    assert "Medication/ninlaro-4mg" in card["detail"]


def test_the_starting_dose_factors_are_shown() -> None:
    labs = [*good_cbc(), lab("1975-2", "2.5", "mg/dL", 2, high={"value": 1.2, "unit": "mg/dL"})]
    (card,) = patient_view(record(history=_cycle(10, 3, 25, "active"), labs=labs))
    assert "- ixazomib started at 3 mg (a reduced starting dose)" in card["detail"]
    assert "moderate hepatic impairment" in card["detail"]
    assert "- renal: unknown now (missing" in card["detail"]


def test_every_course_card_shows_how_to_take_ixazomib() -> None:
    quiet = patient_view(record(history=TWO_REDUCTIONS, labs=TWO_EPISODES))
    held = patient_view(
        record(history=_cycle(10, 4, 25, "active"), labs=[anc(1500, 1), platelets(22000, 1)])
    )
    for (card,) in (quiet, held):
        assert markdown() in card["detail"]


def test_a_reduction_owed_during_a_hold_is_listed_under_the_hold() -> None:
    """Platelets low again after the 2nd episode recovered: the hold comes first; the 3 mg
    due on resumption is due too."""
    history = [*_cycle(33, 4, 25, "completed"), *_cycle(5, 4, 20, "active")]
    labs = [
        *good_cbc(34),
        platelets(25000, 30),
        platelets(80000, 28),
        platelets(28000, 4),
        platelets(90000, 3),
        anc(1800, 1),
        platelets(21000, 1),
    ]
    (card,) = patient_view(record(history=history, labs=labs))
    assert card["indicator"] == "critical"
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    due = card["detail"].split("**Due now:**\n")[1].split("\n\n")[0].splitlines()
    assert len(due) == 2
    assert due[0].startswith("- platelets 21,000/mm3 (< 30,000): withhold")
    assert due[1].startswith("- Reduction not yet ordered: ixazomib 3 mg (latest order 4 mg)")


def test_an_active_strong_cyp3a_inducer_is_shown_for_review() -> None:
    rifampin = order(code="9384", dose=600, status="active", days_ago=20)
    (card,) = patient_view(record(history=[*_cycle(10, 4, 25, "active"), rifampin]))
    assert card["indicator"] == "info"  # a review, not something due now
    assert "**Also to review:**\n- Strong CYP3A inducer (rifampin)" in card["detail"]
    assert recommendation(card) == {
        "rule": "strong-cyp3a-inducer",
        "ixazomib": {"action": "review"},
    }


def test_a_higher_dose_ordered_after_a_lower_one_is_named_as_the_level_due() -> None:
    """Dose levels only go down: 3 mg was ordered, then 4 mg again. No toxicity explains it,
    so the reduction owed is named as the order hooks name it (dose-level-due)."""
    history = [
        *_cycle(61, 4, 25, "completed"),
        *_cycle(33, 3, 25, "completed"),
        *_cycle(5, 4, 25, "active"),
    ]
    (card,) = patient_view(record(history=history))
    assert card["indicator"] == "warning"
    assert recommendation(card) == {
        "rule": "dose-level-due",
        "ixazomib": {"action": "reduce", "doseMg": 3},
    }
