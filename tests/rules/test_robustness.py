"""Malformed input never crashes evaluation: a bad resource is skipped (and named)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .builders import (
    DIARRHEA,
    adverse_event,
    anc,
    lab_result,
    order,
    platelets,
    record,
    sign,
)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def corrupt(resource: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(resource)
    target = broken
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return broken


TEMPLATES = {
    "draft": order(dose=4, id="d"),
    "history": order(status="active", days_ago=40, dose=4, id="h"),
    "anc": anc(400, 1, id="a"),
    "event": adverse_event(DIARRHEA, 3, suspect="MedicationRequest/h"),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(sorted(TEMPLATES)), data=st.data(), value=junk)
def test_any_corrupted_field_never_crashes(which: str, data: st.DataObject, value: Any) -> None:
    template = TEMPLATES[which]
    path = data.draw(st.sampled_from(paths(template)))
    broken = corrupt(template, path, value)
    draft = broken if which == "draft" else TEMPLATES["draft"]
    history = [broken if which == "history" else TEMPLATES["history"]]
    labs = [broken if which == "anc" else TEMPLATES["anc"], platelets(200000, 1)]
    events = [broken] if which == "event" else []
    rec = record(history=history, labs=labs, adverseEvents=events)
    sign(draft, rec)
    lab_result([labs[0]], rec)
