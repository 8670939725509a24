"""Properties over generated histories: labelled doses only, unit invariance, monotonicity."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .builders import (
    ANC,
    LENALIDOMIDE,
    PLATELETS,
    lab,
    lab_result,
    order,
    recommendation,
    record,
    sign,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

counts = st.integers(min_value=0, max_value=400_000)
anc_counts = st.integers(min_value=0, max_value=5_000)
start_doses = st.sampled_from(["4", "3", "2.3"])
draft_doses = st.sampled_from(["4", "3", "2.3", "3.5", "8", "1", "0.5"])
# Each count in cells/mm3 -> (value, unit, system): all exactly equal.
UNITS = [
    (Decimal("0.001"), "10*3/uL", "http://unitsofmeasure.org"),
    (Decimal("0.001"), "10*9/L", "http://unitsofmeasure.org"),
    (Decimal(1), "/uL", "http://unitsofmeasure.org"),
    (Decimal(1), "/mm3", None),
    (Decimal("0.001"), "K/uL", None),
    (Decimal("0.001"), "x10E3/uL", None),
]


def series(code: str, values: list[int], unit_index: int = 0) -> list[dict[str, Any]]:
    factor, unit, system = UNITS[unit_index]
    days = range(len(values) * 5, 0, -5)
    return [
        lab(code, Decimal(v) * factor, unit, day, system=system, id=f"{code}-{day}")
        for v, day in zip(values, days, strict=True)
    ]


def history(start: str) -> list[dict[str, Any]]:
    return [
        order(status="active", days_ago=200, dose=start, id="ixa"),
        order(code=LENALIDOMIDE, status="active", days_ago=200, dose=25, id="len"),
    ]


def advice(cards: list[dict[str, Any]]) -> list[str]:
    return sorted(repr(recommendation(c)) for c in cards)


RANK = {"hold": 2, "discontinue": 3, "reduce": 1, "start-reduced": 1}


def restrictiveness(cards: list[dict[str, Any]]) -> int:
    return max((RANK.get(recommendation(c)["ixazomib"]["action"], 0) for c in cards), default=0)


@FAST
@given(
    start=start_doses,
    draft=draft_doses,
    ancs=st.lists(anc_counts, min_size=1, max_size=12),
    plts=st.lists(counts, min_size=1, max_size=12),
)
def test_every_ixazomib_dose_advised_is_labelled(
    start: str, draft: str, ancs: list[int], plts: list[int]
) -> None:
    rec = record(history=history(start), labs=series(ANC, ancs) + series(PLATELETS, plts))
    cards = sign(order(dose=draft), rec)  # sign() checks doseMg in {2.3, 3, 4} on every card
    for card in cards:
        dose = recommendation(card)["ixazomib"].get("doseMg")
        assert dose is None or Decimal(dose) in {Decimal("2.3"), Decimal(3), Decimal(4)}


@FAST
@given(
    start=start_doses,
    ancs=st.lists(anc_counts, min_size=1, max_size=10),
    plts=st.lists(counts, min_size=1, max_size=10),
    unit_a=st.integers(0, len(UNITS) - 1),
    unit_b=st.integers(0, len(UNITS) - 1),
)
def test_unit_equivalent_inputs_give_identical_advice(
    start: str, ancs: list[int], plts: list[int], unit_a: int, unit_b: int
) -> None:
    def run(unit: int) -> list[str]:
        labs = series(ANC, ancs, unit) + series(PLATELETS, plts, unit)
        return advice(sign(order(dose=4), record(history=history(start), labs=labs)))

    assert run(unit_a) == run(unit_b)


@FAST
@given(
    start=start_doses,
    earlier=st.lists(anc_counts, max_size=8),
    value=anc_counts,
    lower_by=st.integers(min_value=1, max_value=2_000),
)
def test_a_lower_count_is_never_less_restrictive(
    start: str, earlier: list[int], value: int, lower_by: int
) -> None:
    lower = max(0, value - lower_by)
    for hook in ("order-sign", "lab-result"):
        results = []
        for current in (value, lower):
            rec = record(
                history=history(start),
                labs=series(ANC, [*earlier, 10_000]) + series(PLATELETS, [200_000]),
            )
            new = lab(ANC, Decimal(current), "/uL", 0.5, id="newest")
            if hook == "order-sign":
                rec.resources["labs"].append(new)
                results.append(restrictiveness(sign(order(dose=4), rec)))
            else:
                results.append(restrictiveness(lab_result([new], rec)))
        assert results[1] >= results[0], (hook, value, lower)
