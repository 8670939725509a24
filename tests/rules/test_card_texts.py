"""Texts a clinician can trust: what a card says is what happened."""

from __future__ import annotations

from datetime import timedelta

from .builders import (
    LENALIDOMIDE,
    NOW,
    PLATELETS,
    RASH,
    adverse_event,
    anc,
    good_cbc,
    lab,
    lab_result,
    one,
    order,
    patient,
    platelets,
    recommendation,
    record,
    rules_of,
    sign,
)

BILIRUBIN, CREATININE, WEIGHT = "1975-2", "2160-0", "29463-7"
ON_IXAZOMIB = [order(status="active", days_ago=21, dose=4, id="ixa-c1")]


def text_of(card: dict) -> str:  # type: ignore[type-arg]
    return f"{card['summary']}\n{card['detail']}\n{card['source']['label']}"


def test_a_data_check_card_cites_no_section_dash() -> None:
    cards = sign(
        order(dose=4, id="d"),
        record(history=ON_IXAZOMIB, labs=[anc(2000, 1), lab(PLATELETS, "25", "K/uL", 1)]),
    )
    card = one(cards, "data-uninterpretable")
    assert "section -" not in text_of(card)
    assert card["source"]["label"].startswith("NINLARO (ixazomib) US prescribing information")
    assert "Data check (not a label rule)" in card["detail"]


def test_an_unidentifiable_medication_does_not_claim_a_fetch_failed() -> None:
    draft = order(dose=4, id="u", medication={"medicationCodeableConcept": "ixazomib 4 mg"})
    card = one(sign(draft, record(history=ON_IXAZOMIB)), "data-unavailable")
    assert "MedicationRequest/u" in card["detail"]
    assert "could not be fetched" not in text_of(card)
    assert "could not be identified" in card["summary"]


def test_a_year_only_birth_date_says_the_exact_age_is_missing() -> None:
    chemistry = [
        lab(BILIRUBIN, "0.8", "mg/dL", 3),
        lab(CREATININE, "3.5", "mg/dL", 3),
        lab(WEIGHT, "70", "kg", 3),
    ]
    rec = record(labs=good_cbc() + chemistry, patient=[patient(birth="1955")])
    card = one(sign(order(dose=4, id="new"), rec), "renal-start-dose")
    assert recommendation(card)["ixazomib"] == {"action": "review"}
    assert "recorded as 1955 only" in card["detail"]
    assert "Cockcroft-Gault needs the exact age" in card["detail"]
    assert "birth date within the last" not in card["detail"]


def test_a_result_dated_in_the_future_is_named_and_not_taken_as_the_latest() -> None:
    tomorrow = (NOW + timedelta(days=1)).isoformat()
    labs = [
        anc(2000, 1),
        platelets(20000, 0.5, id="plt-today"),
        platelets(200000, 0, id="plt-tomorrow", effective=tomorrow),
    ]
    cards = sign(order(dose=4, id="d"), record(history=ON_IXAZOMIB, labs=labs))
    hold = one(cards, "platelets-below-30k")
    assert "Observation/plt-today" in hold["detail"]
    review = one(cards, "data-uninterpretable")
    assert "Observation/plt-tomorrow" in review["detail"]
    assert "dated in the future" in review["detail"]
    assert "platelets-below-30k" in rules_of(cards)


# Lenalidomide stopped after the last cycle: ixazomib goes on alone.
STOPPED_LENALIDOMIDE = [
    order(status="active", days_ago=21, dose=4, id="ixa-c1"),
    order(code=LENALIDOMIDE, status="stopped", days_ago=21, dose=25, id="len-c1"),
]
NOT_ON_RECORD = "No active or on-hold lenalidomide order is on record"


def assert_no_lenalidomide_advice(card: dict) -> None:  # type: ignore[type-arg]
    assert "lenalidomide" not in recommendation(card), recommendation(card)
    assert "lenalidomide" not in card["summary"] or "no lenalidomide order" in card["summary"]
    # The label's own text (cited as it is) aside, the card advises nothing for lenalidomide.
    advice = [line for line in card["detail"].splitlines() if not line.startswith("**Label")]
    said = "\n".join(advice)
    assert NOT_ON_RECORD in said
    assert "withhold ixazomib and lenalidomide" not in said
    assert "Withhold both" not in said
    assert "lenalidomide one level lower" not in said
    assert "withhold lenalidomide" not in said.lower()


def test_a_low_count_does_not_withhold_a_stopped_lenalidomide() -> None:
    labs = [anc(400, 1), platelets(200000, 1)]
    cards = sign(order(dose=4, id="d"), record(history=STOPPED_LENALIDOMIDE, labs=labs))
    card = one(cards, "anc-below-500")
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    assert card["summary"].endswith("withhold ixazomib")
    assert_no_lenalidomide_advice(card)


def test_a_rash_does_not_withhold_a_stopped_lenalidomide() -> None:
    rec = record(history=STOPPED_LENALIDOMIDE, adverseEvents=[adverse_event(RASH, 2)])
    card = one(sign(order(dose=4, id="d"), rec), "rash-grade-2-3")
    assert recommendation(card)["ixazomib"]["action"] == "resume"
    assert_no_lenalidomide_advice(card)


def test_the_lab_result_hook_does_not_withhold_a_stopped_lenalidomide() -> None:
    new = platelets(20000, 0, id="new")
    cards = lab_result([new], record(history=STOPPED_LENALIDOMIDE, labs=[anc(2000, 0), new]))
    card = one(cards, "platelets-below-30k")
    assert recommendation(card)["ixazomib"] == {"action": "hold"}
    assert_no_lenalidomide_advice(card)


def test_a_lenalidomide_order_that_ran_its_course_is_still_advised_on() -> None:
    """Completed is how a cycle's lenalidomide order ends; only a stopped one is stopped."""
    history = [*STOPPED_LENALIDOMIDE[:1], {**STOPPED_LENALIDOMIDE[1], "status": "completed"}]
    labs = [anc(400, 1), platelets(200000, 1)]
    card = one(sign(order(dose=4, id="d"), record(history=history, labs=labs)), "anc-below-500")
    assert recommendation(card)["lenalidomide"] == {"action": "hold"}


def test_a_new_result_dated_in_the_future_is_named_at_the_lab_result_hook() -> None:
    tomorrow = (NOW + timedelta(days=1)).isoformat()
    new = platelets(20000, 0, id="plt-new", effective=tomorrow)
    cards = lab_result([new], record(history=ON_IXAZOMIB, labs=[anc(2000, 1), new]))
    card = one(cards, "data-uninterpretable")
    assert recommendation(card)["ixazomib"] == {"action": "review"}
    assert "Observation/plt-new" in card["detail"]
    assert "dated in the future" in card["detail"]
