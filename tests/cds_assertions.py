"""What every CDS Hooks 2.0 response of this service must look like (spec + contract)."""

from __future__ import annotations

import uuid
from typing import Any

RECOMMENDATION = "org.ixazomib-cds.recommendation"
IXAZOMIB_ACTIONS = {
    "hold",
    "resume",
    "reduce",
    "start-reduced",
    "discontinue",
    "correct-dose",
    "review",
}
LENALIDOMIDE_ACTIONS = {"hold", "reduce", "resume", "discontinue"}


def assert_no_nulls_or_empty_arrays(value: Any, path: str = "$") -> None:
    assert value is not None, f"null at {path}"
    if isinstance(value, dict):
        for key, item in value.items():
            assert_no_nulls_or_empty_arrays(item, f"{path}.{key}")
    elif isinstance(value, list):
        assert value or path == "$.cards", f"empty array at {path}"
        for index, item in enumerate(value):
            assert_no_nulls_or_empty_arrays(item, f"{path}[{index}]")


def assert_conformant_response(body: dict[str, Any]) -> None:
    assert isinstance(body.get("cards"), list)
    assert_no_nulls_or_empty_arrays(body)
    for card in body["cards"]:
        assert isinstance(card["summary"], str)
        assert 0 < len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"]
        uuid.UUID(card["uuid"])
        if card.get("suggestions"):
            assert card["selectionBehavior"] in ("at-most-one", "any")
            for suggestion in card["suggestions"]:
                uuid.UUID(suggestion["uuid"])
                assert suggestion["label"]
                for action in suggestion.get("actions", []):
                    assert action["type"] in ("create", "update", "delete")
                    assert action["description"]
        recommendation = (card.get("extension") or {}).get(RECOMMENDATION)
        if recommendation is not None:
            assert recommendation["rule"]
            ixazomib = recommendation["ixazomib"]
            assert ixazomib["action"] in IXAZOMIB_ACTIONS
            if "doseMg" in ixazomib:
                assert ixazomib["doseMg"] in (2.3, 3, 4)
            if "lenalidomide" in recommendation:
                assert recommendation["lenalidomide"]["action"] in LENALIDOMIDE_ACTIONS
            assert card.get("overrideReasons"), "advice cards carry override reasons"
            assert card.get("detail"), "advice cards show what they rest on"


def recommendations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        card["extension"][RECOMMENDATION]
        for card in body["cards"]
        if RECOMMENDATION in (card.get("extension") or {})
    ]
