"""Only the results a decision rests on are validated and read: the latest chemistry, the latest
counts and the counts of each episode below a threshold (with the count that ended it), the pain
scores near now or near a toxicity finding. An old
result no decision reads costs nothing, even when malformed; whatever a decision reads is read
as before, element by element."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

from cds_service.rules.decisions.episodes import count_episodes
from cds_service.rules.facts import Lab, LabValue, Problems
from cds_service.rules.facts.labs import PainMoments, read_labs, read_results

from .builders import (
    NEUROPATHY,
    NOW,
    adverse_event,
    anc,
    good_cbc,
    lab,
    one,
    order,
    platelets,
    recommendation,
    record,
    rules_of,
    sign,
)

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


def _pain_score(score: int, days_ago: float, **kwargs: Any) -> dict[str, Any]:
    resource = lab("72514-3", score, "{score}", days_ago, **kwargs)
    resource["valueInteger"] = resource.pop("valueQuantity")["value"]
    return resource


def test_a_pain_score_far_from_now_and_from_every_toxicity_costs_nothing_even_malformed() -> None:
    labs = [_malformed(_pain_score(6, 120, id="old-pain")), _pain_score(0, 2), *good_cbc(1)]
    cards = sign(order(dose=4, id="d"), record(history=ON_IXAZOMIB, labs=labs))
    assert "data-uninterpretable" not in rules_of(cards)


def test_a_malformed_pain_score_near_now_is_still_named() -> None:
    labs = [_malformed(_pain_score(6, 3, id="recent-pain")), *good_cbc(1)]
    cards = sign(order(dose=4, id="d"), record(history=ON_IXAZOMIB, labs=labs))
    assert "Observation/recent-pain interpretation" in one(cards, "data-uninterpretable")["detail"]


LONG_ON_IXAZOMIB = [order(status="active", days_ago=150, dose=4, id="ixa-c1")]


def test_a_pain_score_near_a_past_neuropathy_makes_it_grade_2_with_pain() -> None:
    """Grade 2 neuropathy, resolved, 100 days ago: with pain it owed one level lower (Table 3's
    "Grade 2 with pain" row); the score beside it is read though it is months old."""
    neuropathy = adverse_event(NEUROPATHY, 2, days_ago=100, outcome="resolved")

    def cards(pain_days_ago: float) -> list[dict[str, Any]]:
        labs = [_pain_score(5, pain_days_ago), *good_cbc(1)]
        rec = record(history=LONG_ON_IXAZOMIB, labs=labs, adverseEvents=[neuropathy])
        return sign(order(dose=4, id="d"), rec)

    with_pain = one(cards(101), "neuropathy-grade-2-pain-or-3")
    assert recommendation(with_pain)["ixazomib"] == {"action": "reduce", "doseMg": 3}
    assert cards(60) == []  # 40 days from the neuropathy and 60 from now: no pain near either


def test_the_pain_scores_read_are_those_near_a_moment_of_reading_every_score() -> None:
    raws = [_pain_score(day % 4, day) for day in range(0, 300, 5)]
    moments = [NOW, NOW - timedelta(days=100), NOW - timedelta(days=230)]
    window = timedelta(days=14)
    picked = _values(
        read_results(raws, set(), NOW, UTC, Problems(), PainMoments(moments, window)),
        Lab.PAIN_SCORE,
    )
    every = _values(read_results(raws, set(), NOW, UTC, Problems()), Lab.PAIN_SCORE)
    assert len(every) == len(raws)
    near = [v for v in every if any(abs(v.at - m) <= window for m in moments)]
    assert [v.reference for v in picked] == [v.reference for v in near]
    assert len(picked) < len(every) / 3
