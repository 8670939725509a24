"""Table 3 non-hematologic rows: neuropathy, rash, other toxicities; grade representations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from .builders import (
    DIARRHEA,
    LOINC,
    NCIT,
    NEURALGIA,
    NEUROPATHY,
    RASH,
    adverse_event,
    concept,
    good_cbc,
    lab,
    one,
    order,
    recommendation,
    record,
    rules_of,
    sign,
    when,
)

IXA = order(status="active", days_ago=100, dose=4, id="ixa")
HISTORY = [IXA, order(code="342369", status="active", days_ago=100, dose=25)]


def sign_with(events: list[dict] | None = None, **others: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    rec = record(history=HISTORY, adverseEvents=events or [], **others)
    return sign(order(dose=4, id="draft"), rec)


def graded_observation(term: dict, grade: int | None, days_ago: float, coded: bool = True) -> dict:  # type: ignore[type-arg]
    resource = {
        "resourceType": "Observation",
        "id": f"g{days_ago}-{grade}",
        "status": "final",
        "code": term,
        "effectiveDateTime": when(days_ago),
    }
    codes = {0: None, 1: "C41338", 2: "C41339", 3: "C41340", 4: "C41337"}
    if coded and grade and codes[grade]:
        resource["valueCodeableConcept"] = concept(NCIT, codes[grade])  # type: ignore[arg-type]
    else:
        resource["valueInteger"] = grade  # type: ignore[assignment]
    return resource


@pytest.mark.parametrize(
    ("grade", "pain", "rule", "action"),
    [
        (1, False, None, None),
        (1, True, "neuropathy-grade-1-pain-or-2", "hold"),
        (2, False, "neuropathy-grade-1-pain-or-2", "hold"),
        (2, True, "neuropathy-grade-2-pain-or-3", "hold"),
        (3, False, "neuropathy-grade-2-pain-or-3", "hold"),
        (4, False, "neuropathy-grade-4", "discontinue"),
    ],
)
def test_neuropathy_rows(grade: int, pain: bool, rule: str | None, action: str | None) -> None:
    events = [adverse_event(NEUROPATHY, grade)]
    if pain:
        events.append(adverse_event(NEURALGIA, 1))
    cards = sign_with(events)
    if rule is None:
        assert cards == []
        return
    card = one(cards, rule)
    assert recommendation(card)["ixazomib"] == {"action": action}
    assert card["indicator"] == "critical"
    if action == "discontinue":
        assert recommendation(card)["lenalidomide"] == {"action": "discontinue"}


def test_pain_score_above_zero_counts_as_pain() -> None:
    score = lab("72514-3", 4, "{score}", 1)
    score["valueInteger"] = score.pop("valueQuantity")["value"]
    score["valueInteger"] = 4
    cards = sign_with([adverse_event(NEUROPATHY, 1)], labs=[*good_cbc(), score])
    assert rules_of(cards) == ["neuropathy-grade-1-pain-or-2"]


def test_resolved_grade_2_neuropathy_without_pain_resumes_silently() -> None:
    assert sign_with([adverse_event(NEUROPATHY, 2, days_ago=10, outcome="resolved")]) == []


def test_resolved_grade_3_neuropathy_owes_one_lower_level() -> None:
    cards = sign_with([adverse_event(NEUROPATHY, 3, days_ago=10, outcome="resolved")])
    card = one(cards, "neuropathy-grade-2-pain-or-3")
    assert recommendation(card)["ixazomib"] == {"action": "reduce", "doseMg": 3}


def test_graded_observation_series_current_grade_is_the_latest() -> None:
    series = [
        graded_observation(NEUROPATHY, 3, 20),
        graded_observation(NEUROPATHY, 1, 5, coded=False),
    ]
    cards = sign_with(toxicityGrades=series)
    # Grade 3 resolved to 1: no hold now, one level lower owed.
    card = one(cards, "neuropathy-grade-2-pain-or-3")
    assert recommendation(card)["ixazomib"] == {"action": "reduce", "doseMg": 3}
    ongoing = [
        graded_observation(NEUROPATHY, 1, 20),
        graded_observation(NEUROPATHY, 3, 5, coded=False),
    ]
    cards = sign_with(toxicityObservations=ongoing)
    assert recommendation(one(cards, "neuropathy-grade-2-pain-or-3"))["ixazomib"] == {
        "action": "hold"
    }


def test_rash_grade_2_first_occurrence_holds_lenalidomide_only() -> None:
    card = one(sign_with([adverse_event(RASH, 2)]), "rash-grade-2-3")
    rec = recommendation(card)
    assert rec["lenalidomide"] == {"action": "hold"}
    assert rec["ixazomib"]["action"] == "resume"
    assert "suggestions" not in card


def test_rash_recurrence_holds_both() -> None:
    events = [adverse_event(RASH, 2, days_ago=40, outcome="resolved"), adverse_event(RASH, 3)]
    cards = sign_with(events)
    hold = [c for c in cards if recommendation(c)["ixazomib"]["action"] == "hold"]
    assert len(hold) == 1
    assert recommendation(hold[0]) == {
        "rule": "rash-grade-2-3",
        "ixazomib": {"action": "hold"},
        "lenalidomide": {"action": "hold"},
    }


def test_rash_grade_4_discontinues_the_regimen() -> None:
    card = one(sign_with([adverse_event(RASH, 4)]), "rash-grade-4")
    assert recommendation(card)["lenalidomide"] == {"action": "discontinue"}


def test_other_grade_3_toxicity_holds_and_attributed_recovery_reduces() -> None:
    card = one(sign_with([adverse_event(DIARRHEA, 3)]), "other-toxicity-grade-3-4")
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    resolved = adverse_event(
        DIARRHEA, 3, days_ago=10, outcome="resolved", suspect="MedicationRequest/ixa"
    )
    card = one(sign_with([resolved]), "other-toxicity-grade-3-4")
    assert recommendation(card)["ixazomib"] == {"action": "reduce", "doseMg": 3}
    unrelated = adverse_event(
        DIARRHEA, 3, days_ago=10, outcome="resolved", suspect="MedicationRequest/ixa", related=False
    )
    assert sign_with([unrelated]) == []


def test_backport_and_r5_grade_extensions_are_both_read() -> None:
    event = adverse_event(DIARRHEA, 4)
    event["extension"][0]["url"] = (
        "http://hl7.org/fhir/uv/ae-research-ig/StructureDefinition/ae-grade"
    )
    assert "other-toxicity-grade-3-4" in rules_of(sign_with([event]))


def test_severity_without_grade_never_triggers_grade_4() -> None:
    cards = sign_with([adverse_event(NEUROPATHY, None, severity="severe")])
    assert rules_of(cards) == ["severity-without-grade"]
    assert recommendation(cards[0])["ixazomib"] == {"action": "review"}


def test_hematologic_adverse_events_are_left_to_the_counts() -> None:
    neutropenia = concept(NCIT, "C143893", "Neutrophil count decreased")
    assert sign_with([adverse_event(neutropenia, 4)]) == []


_ = (Decimal, LOINC)
