"""Only the results a decision rests on are validated and read: the latest chemistry, the latest
counts and the counts of each episode below a threshold (with the count that ended it). An old
result no decision reads costs nothing, even when malformed; whatever a decision reads is read
as before, element by element."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any

from cds_service.rules.decisions.episodes import count_episodes
from cds_service.rules.facts import Lab, LabValue, Problems
from cds_service.rules.facts.labs import read_labs, read_results

from .builders import NOW, anc, good_cbc, lab, one, order, platelets, record, rules_of, sign

ON_IXAZOMIB = [order(status="active", days_ago=21, dose=4, id="ixa-c1")]


def _malformed(resource: dict[str, Any]) -> dict[str, Any]:
    return {**resource, "interpretation": {"text": "not a list"}}  # an element a rule reads


def test_an_old_normal_count_no_decision_reads_costs_nothing_even_malformed() -> None:
    labs = [anc(2500, 10), _malformed(anc(2400, 8, id="old")), *good_cbc(1)]
    cards = sign(order(dose=4, id="d"), record(history=ON_IXAZOMIB, labs=labs))
    assert "data-uninterpretable" not in rules_of(cards)


def test_a_malformed_latest_count_is_still_named() -> None:
    labs = [anc(2500, 10), _malformed(anc(2400, 1, id="latest")), platelets(200000, 1)]
    cards = sign(order(dose=4, id="d"), record(history=ON_IXAZOMIB, labs=labs))
    assert (
        "Observation/latest interpretation: expected a list"
        in one(cards, "data-uninterpretable")["detail"]
    )


def test_a_malformed_count_of_an_episode_is_still_named() -> None:
    labs = [
        anc(2500, 15),
        _malformed(anc(400, 12, id="low")),  # below 500: part of an episode
        anc(2400, 10),
        *good_cbc(1),
    ]
    cards = sign(order(dose=4, id="d"), record(history=ON_IXAZOMIB, labs=labs))
    assert "Observation/low interpretation" in one(cards, "data-uninterpretable")["detail"]


def test_when_a_reading_contradicts_its_preview_every_result_is_read() -> None:
    """A time Python reads but FHIR refuses (no seconds): the latest count is not used, and
    everything is read as if nothing had been previewed (the old malformed count is named)."""
    latest = {**anc(2400, 1, id="latest"), "effectiveDateTime": "2025-03-01T08:00Z"}
    labs = [_malformed(anc(2400, 8, id="old")), latest, platelets(200000, 1)]
    cards = sign(order(dose=4, id="d"), record(history=ON_IXAZOMIB, labs=labs))
    detail = one(cards, "data-uninterpretable")["detail"]
    assert "Observation/latest (invalid: effectiveDateTime)" in detail
    assert "Observation/old interpretation" in detail


def _values(found: list[Any], which: Lab) -> list[LabValue]:
    series = [v for v in found if isinstance(v, LabValue) and v.lab is which]
    return sorted(series, key=lambda v: (v.at, v.reference))


def test_the_episodes_and_the_latest_are_those_of_reading_every_result() -> None:
    counts = [2500, 2400, 450, 480, 900, 2000, 2600, 700, 1200, 3000, 3100, 400]
    raws = [anc(value, 40 - day) for day, value in enumerate(counts)]
    raws += [platelets(value * 100, 40 - day) for day, value in enumerate(counts)]
    raws += [lab("1975-2", f"0.{day + 1}", "mg/dL", 40 - day) for day in range(10)]
    picked = read_results(raws, set(), NOW, UTC, Problems())
    every = [v for raw in raws for v in read_labs(raw, UTC, Problems())]
    assert len(picked) < len(every)
    thresholds = {Lab.ANC: (500, 1000), Lab.PLATELETS: (30000, 75000)}  # hold, new cycle
    for which in (Lab.ANC, Lab.PLATELETS):
        for threshold in map(Decimal, thresholds[which]):
            since = min(v.at for v in _values(every, which))
            assert count_episodes(_values(picked, which), threshold, since) == count_episodes(
                _values(every, which), threshold, since
            )
        assert _values(picked, which)[-1] == _values(every, which)[-1]
    assert _values(picked, Lab.BILIRUBIN) == _values(every, Lab.BILIRUBIN)[-1:]


def test_a_past_order_no_decision_reads_costs_nothing_even_malformed() -> None:
    """A dexamethasone order of the regimen is neither history the dose course is read from nor
    an inducer: it is passed over on its raw JSON."""
    dexamethasone = {**order(code="3264", status="completed", days_ago=28), "note": "x"}
    dexamethasone["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = "forty"
    history = [*ON_IXAZOMIB, dexamethasone]
    cards = sign(order(dose=4, id="d"), record(history=history, labs=good_cbc(1)))
    assert "data-uninterpretable" not in rules_of(cards)


def test_a_wbc_no_neutrophil_percentage_needs_costs_nothing_even_malformed() -> None:
    """A WBC is read only for the ANC of a neutrophil percentage of its specimen: a chemistry
    panel's WBCs, with no percentage beside them, are never read."""
    wbc = _malformed(lab("6690-2", "5.1", "10*3/uL", 2, id="wbc"))
    cards = sign(order(dose=4, id="d"), record(history=ON_IXAZOMIB, labs=[wbc, *good_cbc(1)]))
    assert "data-uninterpretable" not in rules_of(cards)


def test_a_malformed_wbc_beside_a_neutrophil_percentage_is_still_named() -> None:
    specimen = {"specimen": {"reference": "Specimen/s1"}}
    percent = {**lab("770-8", "40", "%", 0.5, id="neut"), **specimen}
    wbc = {**_malformed(lab("6690-2", "5.1", "10*3/uL", 0.5, id="wbc")), **specimen}
    labs = [percent, wbc, *good_cbc(1)]
    cards = sign(order(dose=4, id="d"), record(history=ON_IXAZOMIB, labs=labs))
    assert "Observation/wbc interpretation" in one(cards, "data-uninterpretable")["detail"]
