"""One malformed element costs that element, not the resource."""

from __future__ import annotations

from typing import Any

from .builders import (
    anc,
    good_cbc,
    lab,
    one,
    order,
    patient,
    platelets,
    recommendation,
    record,
    rules_of,
    sign,
)

BILIRUBIN = "1975-2"
ON_IXAZOMIB = [order(status="active", days_ago=21, dose=4, id="ixa-c1")]
HEPATIC = [
    lab(BILIRUBIN, "2.4", "mg/dL", 3, high={"value": 1.2, "unit": "mg/dL"}),
    lab("2160-0", "0.9", "mg/dL", 3),  # creatinine
    lab("29463-7", "70", "kg", 3),  # body weight
]


def details(cards: list[dict]) -> str:  # type: ignore[type-arg]
    return "\n".join(card["detail"] for card in cards)


def test_an_element_no_rule_reads_costs_nothing() -> None:
    draft = {**order(dose=4, id="d"), "category": {"text": "community"}, "note": "not a list"}
    cards = sign(draft, record(labs=good_cbc() + HEPATIC))
    assert rules_of(cards) == ["hepatic-start-dose"]
    assert recommendation(cards[0])["ixazomib"] == {"action": "start-reduced", "doseMg": 3}


def test_a_malformed_part_of_a_dosage_no_rule_reads_costs_nothing() -> None:
    """The route and the text of a dosage are not read (the dose and its timing are): a route
    sent as a bare string is no reason to name the order for review."""
    draft = order(dose=4, id="d")
    draft["dosageInstruction"][0]["route"] = "by mouth"
    draft["dosageInstruction"][0]["text"] = {"div": "4 mg by mouth"}
    cards = sign(draft, record(labs=good_cbc() + HEPATIC))
    assert rules_of(cards) == ["hepatic-start-dose"]
    assert recommendation(cards[0])["ixazomib"] == {"action": "start-reduced", "doseMg": 3}


def test_a_malformed_element_a_rule_reads_is_named_and_the_other_rules_run() -> None:
    draft = order(dose=4, id="d")
    draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = "four"
    cards = sign(draft, record(labs=good_cbc() + HEPATIC))
    assert "hepatic-start-dose" in rules_of(cards)
    assert (
        "MedicationRequest/d dosageInstruction[0].doseAndRate[0].doseQuantity.value: expected a "
        "FHIR decimal; dosageInstruction[0].doseAndRate not read" in details(cards)
    )
    # Without its dose the order cannot pass: its dose is named as unreadable too.
    assert "the order states no dose" in details(cards)


def test_a_malformed_count_date_is_named_and_the_count_is_not_used() -> None:
    """effective[x] is an element whose absence would be filled from ``issued``: a result with
    a malformed one is not read at all (its time would be a guess)."""
    broken = {**platelets(20000, 0.5, id="plt"), "effectiveDateTime": "yesterday"}
    broken["issued"] = "2025-03-01T11:00:00Z"
    cards = sign(order(dose=4, id="d"), record(history=ON_IXAZOMIB, labs=[anc(2000, 1), broken]))
    assert "platelets-below-30k" not in rules_of(cards)
    card = one(cards, "data-uninterpretable")
    assert "Observation/plt (invalid: effectiveDateTime)" in card["detail"]


def test_a_malformed_modifier_element_leaves_the_resource_unread() -> None:
    stopped = {**order(status="active", days_ago=21, dose=4, id="ixa"), "doNotPerform": "maybe"}
    cards = sign(order(dose=4, id="d"), record(history=[stopped]))
    assert "MedicationRequest/ixa (invalid: doNotPerform)" in details(cards)


def test_a_required_element_absent_inside_a_read_element_is_named() -> None:
    draft = order(dose=4, id="d")
    draft["dosageInstruction"][0]["timing"]["repeat"]["boundsPeriod"] = {"start": "soon"}
    cards = sign(draft, record(labs=good_cbc() + HEPATIC))
    assert "hepatic-start-dose" in rules_of(cards)
    assert "MedicationRequest/d dosageInstruction[0].timing.repeat.boundsPeriod.start" in (
        details(cards)
    )


def test_a_year_only_birth_date_is_not_malformed() -> None:
    cards = sign(
        order(dose=4, id="d"), record(labs=good_cbc() + HEPATIC, patient=[patient("1955")])
    )
    assert "Patient/p1" not in details(cards)


def test_a_malformed_list_item_leaves_the_list_out_never_shifts_it() -> None:
    """Leaving out only dosageInstruction[0] would make the second instruction the first: the
    dose read would be another instruction's."""
    draft = order(dose=4, id="d")
    draft["dosageInstruction"] = ["take as directed", *draft["dosageInstruction"]]
    cards = sign(draft, record(labs=good_cbc() + HEPATIC))
    assert "MedicationRequest/d dosageInstruction[0]: " in details(cards)
    assert "dosageInstruction not read" in details(cards)
    assert "the order states no dose" in details(cards)
    assert "hepatic-start-dose" in rules_of(cards)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


WRONG_SHAPES = [7, "x", True, [], {}, ["x"], {"x": 1}]


def test_no_malformed_element_of_an_ixazomib_draft_is_met_with_silence_or_an_error() -> None:
    """Every element of a draft, in turn, replaced by a value of every wrong shape: the draft
    is still answered (never an exception, never no card at all)."""
    draft = order(dose=4, id="d")
    rec = record(labs=good_cbc() + HEPATIC)
    for path in _paths(draft):
        if path[0] in {"resourceType", "id", "medicationCodeableConcept"}:
            continue  # what makes it an ixazomib draft at all (tests/rules/test_robustness.py)
        for wrong in WRONG_SHAPES:
            cards = sign(_replaced(draft, path, wrong), rec)
            assert cards, (path, wrong)
