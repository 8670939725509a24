"""Counts as laboratories and EHRs send them (issue 12, item 6): LOINC under its OID, counts
as components of a CBC panel, the ANC from a neutrophil percentage and a WBC of the same
specimen, and counts sent as bounds ("<20")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cds_service.rules.inputs import JsonDict

from .builders import (
    LOINC,
    UCUM,
    anc,
    by_rule,
    lab,
    lab_result,
    one,
    order,
    platelets,
    recommendation,
    record,
    rules_of,
    sign,
    when,
)

LOINC_OID = "urn:oid:2.16.840.1.113883.6.1"
ON_IXAZOMIB = [order(status="active", days_ago=7, dose=4)]
GOOD_PLATELETS = platelets(200000, 1)


def quantity(value: Any, unit: str) -> JsonDict:
    return {"value": Decimal(str(value)), "unit": unit, "system": UCUM, "code": unit}


def component(code: str, value: Any, unit: str) -> JsonDict:
    return {
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": quantity(value, unit),
    }


def panel(components: list[JsonDict], id: str = "cbc1", code: str = "58410-2") -> JsonDict:
    return {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when(1),
        "component": components,
    }


def test_a_count_coded_under_the_loinc_oid_is_read() -> None:
    low = anc(300, 1)
    low["code"]["coding"][0]["system"] = LOINC_OID
    assert rules_of(sign(order(dose=4), record(ON_IXAZOMIB, labs=[low, GOOD_PLATELETS]))) == [
        "anc-below-500"
    ]


def test_counts_sent_as_components_of_a_cbc_panel_are_read() -> None:
    cbc = panel([component("751-8", "0.3", "10*3/uL"), component("777-3", 20, "10*3/uL")])
    cards = sign(order(dose=4), record(ON_IXAZOMIB, labs=[cbc]))
    assert rules_of(cards) == ["anc-below-500", "platelets-below-30k"]
    assert "Observation/cbc1" in one(cards, "platelets-below-30k")["detail"]


def test_a_good_cbc_panel_passes_the_order() -> None:
    cbc = panel(
        [component("751-8", "2.0", "10*3/uL"), component("777-3", 200, "10*3/uL")], code="57021-8"
    )
    assert sign(order(dose=4), record(ON_IXAZOMIB, labs=[cbc])) == []


def test_the_anc_is_computed_from_the_percentage_and_wbc_of_one_panel() -> None:
    cbc = panel(
        [
            component("6690-2", "3.3", "10*9/L"),
            component("770-8", 12, "%"),
            component("777-3", 200, "10*3/uL"),
        ]
    )
    cards = sign(order(dose=4), record(ON_IXAZOMIB, labs=[cbc]))
    card = one(cards, "anc-below-500")
    # 12 % x 3,300/mm3 = 396/mm3, exactly.
    assert "396/mm3 = 12 % x WBC 3.3 10*9/L" in card["detail"]
    assert recommendation(card)["ixazomib"]["action"] == "hold"


def test_the_anc_is_computed_at_the_lab_hook_from_observations_of_one_specimen() -> None:
    specimen = {"reference": "Specimen/blood-1"}
    percent = lab("23761-0", 12, "%", 0.5, id="neut-pct")
    wbc = lab("26464-8", "3.3", "10*9/L", 0.5, id="wbc")
    percent["specimen"] = wbc["specimen"] = specimen
    cards = lab_result([percent, wbc, GOOD_PLATELETS], record(ON_IXAZOMIB))
    card = one(cards, "anc-below-500")
    assert "396/mm3 = 12 % x WBC 3.3 10*9/L" in card["detail"]


def test_a_percentage_and_wbc_of_one_panel_filed_as_members_give_the_anc() -> None:
    percent = lab("770-8", 10, "%", 1, id="pct", effective=when(1))
    wbc = lab("6690-2", "4.0", "10*9/L", 1, id="wbc", effective=when(1))
    members = panel([], id="cbc-members")
    del members["component"]
    members["hasMember"] = [{"reference": "Observation/pct"}, {"reference": "Observation/wbc"}]
    cards = sign(order(dose=4), record(ON_IXAZOMIB, labs=[members, percent, wbc, GOOD_PLATELETS]))
    assert "400/mm3 = 10 % x WBC 4.0 10*9/L" in one(cards, "anc-below-500")["detail"]


def test_a_percentage_without_a_wbc_of_its_specimen_is_reviewed_never_silent() -> None:
    percent = lab("770-8", 5, "%", 0.5, id="neut-pct")
    cards = lab_result([percent], record(ON_IXAZOMIB))
    card = one(cards, "data-uninterpretable")
    assert "Observation/neut-pct" in card["detail"]
    assert "ANC could not be computed" in card["detail"]


def test_a_measured_anc_of_the_same_specimen_is_used_rather_than_computed() -> None:
    specimen = {"reference": "Specimen/blood-2"}
    measured = anc(2000, 1)
    percent = lab("770-8", 5, "%", 1)
    wbc = lab("6690-2", "3.0", "10*9/L", 1)
    for resource in (measured, percent, wbc):
        resource["specimen"] = specimen
    assert (
        sign(order(dose=4), record(ON_IXAZOMIB, labs=[measured, percent, wbc, GOOD_PLATELETS]))
        == []
    )


def test_a_platelet_count_sent_as_text_below_every_threshold_is_below_them() -> None:
    low = platelets(200000, 1)
    del low["valueQuantity"]
    low["valueString"] = "<20 x10^3/uL"
    cards = sign(order(dose=4), record(ON_IXAZOMIB, labs=[anc(2000, 1), low]))
    card = one(cards, "platelets-below-30k")
    assert "<20 x10^3/uL" in card["detail"]


def test_a_bound_the_thresholds_cannot_decide_is_reviewed() -> None:
    low = platelets(50000, 1)
    low["valueQuantity"]["comparator"] = "<"
    cards = sign(order(dose=4), record(ON_IXAZOMIB, labs=[anc(2000, 1), low]))
    assert not by_rule(cards, "platelets-below-30k")
    assert "not decidable" in one(cards, "data-uninterpretable")["detail"]


def test_a_count_text_without_a_unit_is_reviewed() -> None:
    low = platelets(200000, 1)
    del low["valueQuantity"]
    low["valueString"] = "<20"
    cards = sign(order(dose=4), record(ON_IXAZOMIB, labs=[anc(2000, 1), low]))
    assert "cannot be converted exactly" in one(cards, "data-uninterpretable")["detail"]


def test_a_high_bound_above_every_threshold_passes() -> None:
    high = platelets(200000, 1)
    high["valueQuantity"]["comparator"] = ">"
    high["valueQuantity"]["value"] = Decimal(100)
    assert sign(order(dose=4), record(ON_IXAZOMIB, labs=[anc(2000, 1), high])) == []


def test_a_preliminary_cbc_panel_at_the_lab_hook_is_named_never_silent() -> None:
    cbc = panel([component("751-8", "0.2", "10*3/uL")], id="cbc-pre")
    cbc["status"] = "preliminary"
    card = one(lab_result([cbc], record(ON_IXAZOMIB)), "data-uninterpretable")
    assert "blood count panel Observation/cbc-pre" in card["detail"]


def test_a_differential_filed_result_by_result_beside_a_measured_anc_passes_in_silence() -> None:
    # Each result its own Observation, same time, no specimen (as many EHR APIs send them):
    # the measured ANC decides, the percentage needs no WBC.
    taken = when(1)
    results = [
        anc(2000, 1, effective=taken),
        lab("770-8", 55, "%", 1, effective=taken),
        lab("6690-2", "3.6", "10*9/L", 1, effective=taken),
        platelets(200000, 1, effective=taken),
    ]
    assert sign(order(dose=4), record(ON_IXAZOMIB, labs=results)) == []


def test_an_old_percentage_without_a_wbc_is_overtaken_by_a_newer_count() -> None:
    results = [lab("770-8", 5, "%", 20), anc(2000, 1), GOOD_PLATELETS]
    assert sign(order(dose=4), record(ON_IXAZOMIB, labs=results)) == []


def test_an_anc_computed_at_exactly_500_is_not_below_500() -> None:
    # 50 % x 1.0 10*9/L is 500/mm3 exactly: not below the hold threshold.
    for percent, wbc in (("50", "1.0"), ("12.5", "4.0"), ("10", "5")):
        cbc = panel(
            [
                component("6690-2", wbc, "10*9/L"),
                component("770-8", percent, "%"),
                component("777-3", 200, "10*3/uL"),
            ]
        )
        # The ANC was read (no "no recent CBC" card) and is not below 500: nothing to say.
        assert sign(order(dose=4), record(ON_IXAZOMIB, labs=[cbc])) == [], (percent, wbc)


def test_the_labs_prefetch_asks_for_every_count_the_rules_read() -> None:
    from cds_service.rules import codes
    from cds_service.rules.data_needs import LAB_LOINC_CODES

    read = codes.ANC_CODES | codes.PLATELET_CODES | codes.NEUTROPHIL_PERCENT_CODES | codes.WBC_CODES
    assert read <= set(LAB_LOINC_CODES)
    assert {"58410-2", "57021-8"} <= set(LAB_LOINC_CODES)  # panels: counts as components
