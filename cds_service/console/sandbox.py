"""The service, run inside the console for its example cards and its paste form.

The console never calls the service it is part of: that would go through (or around) its
authentication and write to its audit trail, so that the committee's report would count cards
nobody was shown. It runs a second app built by the same factory, with the same rule settings,
no authentication (only the console calls it, in-process), its own throwaway database, and
no FHIR server: ``fhirServer`` and ``fhirAuthorization`` are taken out of every request, so
the console reads only what was pasted (a request without its prefetch gets the service's own
412 naming the data it lacks) and can never be used to reach an EHR's FHIR server.
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec
from flask import Flask

from cds_service.config import Config
from cds_service.exact_json import loads_exact, why_invalid
from cds_service.fixtures import RECOMMENDATION_KEY, JsonDict, Scenario, load_scenarios
from cds_service.rules.catalog import RULES

_ENCODER = msgspec.json.Encoder(decimal_format="number")  # exact numbers back out
FETCH_FIELDS = ("fhirServer", "fhirAuthorization")
TRIES_PER_RULE = 3


@dataclass(frozen=True)
class Answer:
    """The sandbox service's answer: its status, its cards, and what went wrong if anything."""

    status: int
    cards: list[JsonDict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Example:
    card: JsonDict
    scenario_id: str


class Sandbox:
    """One per process, built on first use (after gunicorn forks its workers)."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._app: Flask | None = None
        self._examples: dict[str, Example] | None = None

    def _service(self) -> Flask:
        with self._lock:
            if self._app is None:
                self._app = _build(self._config)
            return self._app

    def call(self, service_id: str, request: dict[str, Any]) -> Answer:
        """Post ``request`` (without its FHIR server) to the sandbox service ``service_id``."""
        body = {k: v for k, v in request.items() if k not in FETCH_FIELDS}
        client = self._service().test_client()
        response = client.post(
            f"/cds-services/{service_id}",
            data=_ENCODER.encode(body),
            content_type="application/json",
        )
        answer = response.get_json(silent=True)
        if response.status_code == 200 and isinstance(answer, dict):
            cards = answer.get("cards")
            return Answer(200, [c for c in cards if isinstance(c, dict)] if cards else [])
        return Answer(response.status_code, problems=_issues(answer))

    def examples(self) -> dict[str, Example]:
        """An example card per rule: the bundled scenarios that expect the rule, run here,
        first card of that rule. Worked out once per process."""
        if self._examples is None:
            found = _examples(self, load_scenarios())
            with self._lock:
                self._examples = found
        return self._examples


def _build(config: Config) -> Flask:
    from cds_service.app import create_app

    sandbox = replace(
        config,
        auth_required=False,
        trusted_issuers_path=None,
        console_enabled=False,
        database_url=f"sqlite:///{Path(tempfile.mkdtemp(prefix='ixazomib-console-')) / 'db'}",
    )
    return create_app(sandbox, in_process=True)


def _examples(sandbox: Sandbox, scenarios: list[Scenario]) -> dict[str, Example]:
    examples: dict[str, Example] = {}
    # The plainest case first: fewest expected cards, then the shortest (most generic) id.
    scenarios = sorted(scenarios, key=lambda s: (len(s.expected), len(s.id), s.id))
    for rule in RULES:
        candidates = [s for s in scenarios if any(rule.id in e.rules for e in s.expected)]
        candidates += [s for s in scenarios if any(rule.id in e.rules for e in s.optional)]
        for scenario in candidates[:TRIES_PER_RULE]:
            if rule.id in examples:
                break
            answer = sandbox.call(scenario.service, scenario.cds_request(prefetch=True))
            for card in answer.cards:  # a call often shows other rules' cards too
                recommendation = (card.get("extension") or {}).get(RECOMMENDATION_KEY) or {}
                rule_id = recommendation.get("rule")
                if isinstance(rule_id, str) and rule_id not in examples:
                    examples[rule_id] = Example(card, scenario.id)
    return examples


def parse_request(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """The pasted CDS Hooks request as JSON (numbers exact), or why it is not one."""
    raw = text.encode()
    try:
        value = loads_exact(raw)
    except RecursionError:
        return None, "Not JSON the service reads: nested too deeply."
    except ValueError as error:
        return None, f"Not JSON: {why_invalid(raw, error)}"
    if not isinstance(value, dict):
        return None, "A CDS Hooks request is a JSON object."
    return value, None


def _issues(body: Any) -> list[str]:
    if isinstance(body, dict) and isinstance(body.get("issue"), list):
        texts = []
        for issue in body["issue"]:
            if isinstance(issue, dict):
                text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
                if text:
                    texts.append(str(text))
        return texts or ["(no diagnostics)"]
    return ["The service's answer is not an OperationOutcome."]
