"""Cards and feedback for the review console's report, made through the service's public API.

``seed_report(service)`` calls the running service (``tests/live_server.py``: gunicorn, auth
on, a fresh JWT per call) with bundled scenarios, then reports feedback on the cards it got,
as an EHR would: some accepted, some overridden with reasons, some left without response. It
returns what the report must then say, per rule, worked out from the answers and the feedback
sent (not from the service's report).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from live_server import LiveService

from cds_service.fixtures import RECOMMENDATION_KEY, load_scenarios

OVERRIDE_SYSTEM = "urn:ixazomib-cds:override-reason"
# (scenario, how many calls, the outcome of each call's card: accepted / overridden reason code
# / None for no response)
PLAN: tuple[tuple[str, tuple[str | None, ...]], ...] = (
    ("hep-moderate", ("accepted", "accepted", "accepted", "clinical-judgement", None)),
    (
        "cbc-missing",
        ("data-out-of-date", "data-out-of-date", "clinical-judgement", "accepted", None, None),
    ),
    ("pregnancy-observation", ("accepted", None)),
)


@dataclass
class Expected:
    shown: int = 0
    accepted: int = 0
    overridden: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def no_response(self) -> int:
        return self.shown - self.accepted - self.overridden


def scenario_request(scenario_id: str) -> tuple[str, dict[str, Any]]:
    scenario = next(s for s in load_scenarios() if s.id == scenario_id)
    return scenario.service, scenario.cds_request(prefetch=True)


def call(service: LiveService, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
    path = f"/cds-services/{service_id}"
    response = requests.post(
        service.base_url + path, json=body, headers=service.headers(path), timeout=30
    )
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def seed_report(service: LiveService) -> dict[str, Expected]:
    expected: dict[str, Expected] = {}
    now = datetime.now(UTC).isoformat()
    for scenario_id, outcomes in PLAN:
        service_id, body = scenario_request(scenario_id)
        for outcome in outcomes:
            cards = call(service, service_id, body)["cards"]
            feedback = []
            for index, card in enumerate(cards):
                rule = card["extension"][RECOMMENDATION_KEY]["rule"]
                counts = expected.setdefault(rule, Expected())
                counts.shown += 1
                if index > 0 or outcome is None:  # only the first card gets feedback
                    continue
                entry: dict[str, Any] = {"card": card["uuid"], "outcomeTimestamp": now}
                if outcome == "accepted":
                    entry["outcome"] = "accepted"
                    entry["acceptedSuggestions"] = [
                        {"id": s["uuid"]} for s in card.get("suggestions", [])[:1]
                    ]
                    counts.accepted += 1
                else:
                    display = next(
                        o["display"] for o in card["overrideReasons"] if o["code"] == outcome
                    )
                    entry["outcome"] = "overridden"
                    entry["overrideReason"] = {
                        "reason": {"system": OVERRIDE_SYSTEM, "code": outcome, "display": display}
                    }
                    counts.overridden += 1
                    counts.reasons[display] += 1
                feedback.append(entry)
            if feedback:
                path = f"/cds-services/{service_id}/feedback"
                response = requests.post(
                    service.base_url + path,
                    json={"feedback": feedback},
                    headers=service.headers(path),
                    timeout=30,
                )
                response.raise_for_status()
    return expected
