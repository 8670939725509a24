"""Clinical test scenarios: load them, move them to "now" and turn them into requests.

A scenario (``cds_service/scenarios/<id>.json``, package data, so that ``ixazomib-cds
load-fixtures`` works installed; format in ``fhir_fixtures/README.md``) is
one patient's FHIR record, one CDS Hooks call and the recommendations the label says the
answer must carry. The service reads "now" from its clock, so every date, dateTime and instant
in a scenario is shifted by (real now - the scenario's ``now``) when it is loaded: a CBC
written 8 days before the scenario's ``now`` is 8 days old whenever the tests run.

Nothing here imports Flask; the loader is used by the tests, by the integration tests (which
load ``transaction_bundle()`` into a FHIR server) and by hand.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cds_service.services import SERVICES, CdsService

JsonDict = dict[str, Any]

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
RECOMMENDATION_KEY = "org.ixazomib-cds.recommendation"

# Deliberate departures from FHIR R4 that real clients make (scenario field "deviations").
DEVIATION_NAIVE_DATETIMES = "dateTime-without-zone"  # Epic: dateTimes without a zone
DEVIATION_UNTYPED_BUNDLE = "draftOrders-bundle-without-type"  # CDS Hooks Sandbox, Epic

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATETIME = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?)(?P<frac>\.\d+)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?$"
)

# The reference that ties a resource to its patient, by resource type.
_PATIENT_FIELD = {
    "AllergyIntolerance": "patient",
    "Patient": "",
}

# Search parameters the prefetch templates use, and where they look in a resource.
_TOKEN_PATHS = {
    "code": ("code",),
    "value-concept": ("valueCodeableConcept",),
}
_IGNORED_PARAMS = {"_count", "_sort", "patient", "subject"}


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ExpectedRecommendation:
    """One recommendation the answer must (or, in ``optional``, may) carry.

    ``rules`` and ``ixazomib_actions`` hold the accepted values (one, or several where the
    label leaves a judgement). ``ixazomib_actions`` is empty when the scenario does not
    constrain ixazomib; the card's ixazomib action must then not be a restrictive one.
    """

    rules: tuple[str, ...]
    ixazomib_actions: tuple[str, ...]
    ixazomib_dose_mg: str | None
    lenalidomide_action: str | None
    lenalidomide_dose_mg: str | None
    suggested_product_code: str | None
    raw: JsonDict

    @classmethod
    def from_json(cls, data: JsonDict) -> ExpectedRecommendation:
        ixazomib = data.get("ixazomib") or {}
        lenalidomide = data.get("lenalidomide") or {}
        return cls(
            rules=_as_tuple(data["rule"]),
            ixazomib_actions=_as_tuple(ixazomib.get("action")),
            ixazomib_dose_mg=_dose(ixazomib.get("doseMg")),
            lenalidomide_action=lenalidomide.get("action"),
            lenalidomide_dose_mg=_dose(lenalidomide.get("doseMg")),
            suggested_product_code=data.get("suggestedProductCode"),
            raw=data,
        )

    def matches(self, recommendation: JsonDict) -> bool:
        """Whether a card's ``org.ixazomib-cds.recommendation`` satisfies this expectation."""
        if recommendation.get("rule") not in self.rules:
            return False
        ixazomib = recommendation.get("ixazomib") or {}
        action = ixazomib.get("action")
        if self.ixazomib_actions:
            if action not in self.ixazomib_actions:
                return False
        elif action in RESTRICTIVE_ACTIONS:
            return False
        if self.ixazomib_dose_mg is not None and _dose(ixazomib.get("doseMg")) != (
            self.ixazomib_dose_mg
        ):
            return False
        lenalidomide = recommendation.get("lenalidomide") or {}
        if self.lenalidomide_action is not None:
            if lenalidomide.get("action") != self.lenalidomide_action:
                return False
            card_dose = _dose(lenalidomide.get("doseMg"))
            if self.lenalidomide_dose_mg is not None and card_dose not in (
                None,
                self.lenalidomide_dose_mg,
            ):
                return False
        return True

    def describe(self) -> str:
        return json.dumps(self.raw, sort_keys=True)


RESTRICTIVE_ACTIONS = frozenset({"hold", "reduce", "start-reduced", "discontinue", "correct-dose"})


@dataclass
class Scenario:
    id: str
    title: str
    label: str
    service: str
    now: datetime
    context: JsonDict
    resources: list[JsonDict]
    expected: list[ExpectedRecommendation]
    optional: list[ExpectedRecommendation] = field(default_factory=list)
    allow_extra_review: bool = False
    prefetch_failures: dict[str, str] = field(default_factory=dict)
    deviations: tuple[str, ...] = ()
    send_fhir_server: bool = True  # False: the client sends no fhirServer (prefetch only)
    # The cards the answer must have, each by its indicator, with or without advice (None: not
    # checked). patient-view scenarios use it: its course card may advise nothing.
    expected_cards: list[JsonDict] | None = None
    path: Path | None = None

    @property
    def cds_service(self) -> CdsService[Any]:
        found = SERVICES.get(self.service)
        assert found is not None  # load_scenario refuses an unknown service
        return found

    @property
    def hook(self) -> str:
        return self.cds_service.hook

    @property
    def patient_id(self) -> str:
        return str(self.context["patientId"])

    # ----------------------------------------------------------------- the CDS Hooks request

    def cds_request(self, prefetch: bool = True, fhir_server: str | None = None) -> JsonDict:
        """A complete CDS Hooks 2.0 request for this scenario.

        With ``prefetch`` every key of the service's data needs is filled from ``resources``
        the way a FHIR server would answer its query (a key named in ``prefetchFailures`` carries an
        OperationOutcome instead). ``fhir_server`` adds ``fhirServer`` and a bearer token.
        """
        request: JsonDict = {
            "hook": self.hook,
            "hookInstance": str(uuid.uuid4()),
            "context": copy.deepcopy(self.context),
        }
        if fhir_server is not None:
            request["fhirServer"] = fhir_server
            request["fhirAuthorization"] = {
                "access_token": "scenario-test-token",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "cds-service",
                "patient": self.patient_id,
            }
        if prefetch:
            request["prefetch"] = self.prefetch()
        return request

    def prefetch(self) -> JsonDict:
        prefetched: JsonDict = {}
        for need in self.cds_service.data_needs:
            query = need.query.replace("{{context.patientId}}", self.patient_id)
            if need.key in self.prefetch_failures:
                prefetched[need.key] = operation_outcome(self.prefetch_failures[need.key])
            elif "?" not in query:
                prefetched[need.key] = self.read(query)
            else:
                prefetched[need.key] = self.search(query)
        return prefetched

    # --------------------------------------------------------- what the FHIR server holds

    def read(self, reference: str) -> JsonDict | None:
        """The resource ``Type/id`` as the EHR's FHIR server holds it, or None."""
        resource_type, _, resource_id = reference.strip("/").partition("/")
        for resource in self.resources:
            if resource.get("resourceType") == resource_type and resource.get("id") == (
                resource_id
            ):
                return copy.deepcopy(resource)
        return None

    def search(self, query: str, base_url: str | None = None) -> JsonDict:
        """Answer a type-level search the way a FHIR server would (searchset Bundle).

        Supports what the service's prefetch templates use: ``patient``/``subject``, token
        lists on ``code`` and ``value-concept`` (``system|code``), ``_sort=-date`` and
        ``_count``. Unknown parameters are ignored.
        """
        parts = urlsplit(query)
        resource_type = parts.path.strip("/").split("/")[-1]
        params = parse_qs(parts.query)
        patient = (params.get("patient") or params.get("subject") or [self.patient_id])[0]
        patient_ref = patient if "/" in patient else f"Patient/{patient}"
        matches = [
            r
            for r in self.resources
            if r.get("resourceType") == resource_type
            and _patient_reference(r) == patient_ref
            and all(
                _matches_tokens(r, name, values[0])
                for name, values in params.items()
                if name not in _IGNORED_PARAMS
            )
        ]
        if params.get("_sort", [""])[0].lstrip("-") == "date":
            matches.sort(key=_resource_date, reverse=params["_sort"][0].startswith("-"))
        if "_count" in params:
            matches = matches[: int(params["_count"][0])]
        prefix = (base_url.rstrip("/") + "/") if base_url else ""
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "entry": [
                {
                    "fullUrl": f"{prefix}{r['resourceType']}/{r['id']}",
                    "resource": copy.deepcopy(r),
                    "search": {"mode": "match"},
                }
                for r in matches
            ],
        }

    def failing_resource_types(self) -> set[str]:
        """Resource types whose searches also fail on the FHIR server (``prefetchFailures``)."""
        needs = self.cds_service.data_needs
        return {need.resource_type for need in needs if need.key in self.prefetch_failures}

    def transaction_bundle(self) -> JsonDict:
        """Every server-side resource as a FHIR transaction of PUTs (ids are kept)."""
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": copy.deepcopy(r),
                    "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                }
                for r in self.resources
            ],
        }

    def context_resources(self) -> list[JsonDict]:
        """Resources carried in the hook context (draft orders or new observations)."""
        found: list[JsonDict] = []
        for key in self.cds_service.context_bundles:
            bundle = self.context.get(key)
            if isinstance(bundle, dict):
                found += [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
        return found


# ------------------------------------------------------------------------------ loading


def load_scenarios(
    directory: Path | str | None = None, now: datetime | None = None
) -> list[Scenario]:
    """Every scenario in ``directory`` (default: the scenarios in the package), sorted by id,
    with its dates shifted so that the scenario's ``now`` becomes ``now`` (default: the
    real current time, to the second)."""
    folder = Path(directory) if directory is not None else SCENARIO_DIR
    current = now or datetime.now(UTC).replace(microsecond=0)
    scenarios = [load_scenario(path, current) for path in sorted(folder.glob("*.json"))]
    ids = [s.id for s in scenarios]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise ScenarioError(f"duplicate scenario ids: {sorted(duplicates)}")
    return scenarios


def load_scenario(path: Path, now: datetime | None = None) -> Scenario:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"{path}: not readable JSON ({exc})") from exc
    try:
        scenario_now = _parse_datetime(data["now"])
        if scenario_now.tzinfo is None:
            raise ScenarioError(f"{path}: 'now' must carry a time zone")
        current = now or datetime.now(UTC).replace(microsecond=0)
        delta = current - scenario_now
        shifted = shift_dates(data, delta)
        if data["service"] not in SERVICES:
            raise ScenarioError(f"{path}: unknown service {data['service']!r}")
        if path.stem != data["id"]:
            raise ScenarioError(f"{path}: file name and id {data['id']!r} differ")
        return Scenario(
            id=data["id"],
            title=data["title"],
            label=data["label"],
            service=data["service"],
            now=scenario_now + delta,
            context=shifted["context"],
            resources=shifted["resources"],
            expected=[ExpectedRecommendation.from_json(e) for e in data["expected"]],
            optional=[ExpectedRecommendation.from_json(e) for e in data.get("optional", [])],
            allow_extra_review=bool(data.get("allowExtraReview", False)),
            prefetch_failures=dict(data.get("prefetchFailures", {})),
            deviations=tuple(data.get("deviations", ())),
            send_fhir_server=bool(data.get("fhirServer", True)),
            expected_cards=data.get("expectedCards"),
            path=path,
        )
    except KeyError as exc:
        raise ScenarioError(f"{path}: missing field {exc}") from exc


def shift_dates(value: Any, delta: timedelta) -> Any:
    """A deep copy of ``value`` with every FHIR date, dateTime and instant moved by ``delta``.

    Precision and time-zone style are kept: a dateTime without a zone (Epic style) stays
    without one, a date stays a date (moved by ``delta`` taken at noon, so a whole-day
    shift lands on the same weekday offset), fractional seconds are kept.
    """
    if isinstance(value, dict):
        return {k: shift_dates(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [shift_dates(v, delta) for v in value]
    if isinstance(value, str):
        return _shift_string(value, delta)
    return value


def _shift_string(text: str, delta: timedelta) -> str:
    if _DATE.match(text):
        day = date.fromisoformat(text)
        moved = datetime(day.year, day.month, day.day, 12) + delta
        return moved.date().isoformat()
    match = _DATETIME.match(text)
    if not match:
        return text
    base = match.group("base")
    fmt = "%Y-%m-%dT%H:%M:%S" if base.count(":") == 2 else "%Y-%m-%dT%H:%M"
    moved = datetime.strptime(base, fmt) + delta  # wall-clock shift; zone kept as written
    return moved.strftime(fmt) + (match.group("frac") or "") + (match.group("tz") or "")


def _parse_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def with_zones(value: Any) -> Any:
    """A copy with ``Z`` added to every dateTime that has a time but no zone: what an
    Epic-style resource would be if it conformed to FHIR R4 (used to validate the rest of it)."""
    if isinstance(value, dict):
        return {k: with_zones(v) for k, v in value.items()}
    if isinstance(value, list):
        return [with_zones(v) for v in value]
    if isinstance(value, str):
        match = _DATETIME.match(value)
        if match and not match.group("tz"):
            return value + "Z"
    return value


def operation_outcome(text: str) -> JsonDict:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception", "diagnostics": text}],
    }


# ----------------------------------------------------------------------------- helpers


def recommendations(response: JsonDict) -> list[JsonDict]:
    """The ``org.ixazomib-cds.recommendation`` extensions of a CDS Hooks response's cards."""
    found: list[JsonDict] = []
    for card in response.get("cards") or []:
        extension = card.get("extension") if isinstance(card, dict) else None
        if isinstance(extension, dict) and isinstance(extension.get(RECOMMENDATION_KEY), dict):
            found.append(extension[RECOMMENDATION_KEY])
    return found


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return (str(value),)


def _dose(value: Any) -> str | None:
    """A dose in mg as a canonical decimal string ("3", "2.3"), so 3 == 3.0."""
    if value is None:
        return None
    text = format(float(value), "g") if not isinstance(value, str) else value
    return text.rstrip("0").rstrip(".") if "." in text else text


def _patient_reference(resource: JsonDict) -> str | None:
    resource_type = resource.get("resourceType", "")
    if resource_type == "Patient":
        return f"Patient/{resource.get('id')}"
    field_name = _PATIENT_FIELD.get(resource_type, "subject")
    reference = resource.get(field_name)
    if isinstance(reference, dict):
        value = reference.get("reference")
        return value if isinstance(value, str) else None
    return None


def _matches_tokens(resource: JsonDict, name: str, value: str) -> bool:
    paths = _TOKEN_PATHS.get(name)
    if paths is None:
        return True
    wanted = set(value.split(","))
    for path in paths:
        concept = resource.get(path)
        if isinstance(concept, dict):
            for coding in _codings(concept):
                system, code = coding.get("system", ""), coding.get("code", "")
                if f"{system}|{code}" in wanted or code in wanted:
                    return True
    return False


def _codings(concept: JsonDict) -> Iterable[JsonDict]:
    codings = concept.get("coding")
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def _resource_date(resource: JsonDict) -> datetime:
    for key in ("effectiveDateTime", "effectiveInstant", "issued"):
        value = resource.get(key)
        if isinstance(value, str):
            return _as_utc(value)
    period = resource.get("effectivePeriod")
    if isinstance(period, dict) and isinstance(period.get("start"), str):
        return _as_utc(period["start"])
    return datetime.min.replace(tzinfo=UTC)


def _as_utc(text: str) -> datetime:
    if _DATE.match(text):
        text += "T00:00:00"
    parsed = _parse_datetime(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def upload_scenarios(
    fhir_server: str,
    token: str | None = None,
    directory: Path | str | None = None,
    *,
    timeout_seconds: float = 60.0,
) -> int:
    """Load every scenario's resources into ``fhir_server`` (one transaction per scenario).

    For ``ixazomib-cds load-fixtures``: integrators load the scenarios into their own FHIR
    server or a public sandbox and run the integration suite against it. Raises
    ``ScenarioError`` naming the scenario whose transaction the server refused.
    """
    import requests  # here, so that loading scenarios needs no HTTP library

    headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    scenarios = load_scenarios(directory)
    if not scenarios:  # a wrong --fixtures path, or a package built without its data
        folder = Path(directory) if directory is not None else SCENARIO_DIR
        state = "is not a directory" if not folder.is_dir() else "holds no scenario (*.json)"
        raise ScenarioError(f"nothing to load: {folder} {state}")
    with requests.Session() as session:
        for scenario in scenarios:
            response = session.post(
                fhir_server.rstrip("/"),
                json=scenario.transaction_bundle(),
                headers=headers,
                timeout=timeout_seconds,
            )
            if response.status_code >= 300:
                raise ScenarioError(
                    f"{scenario.id}: the FHIR server refused the transaction "
                    f"(HTTP {response.status_code}): {response.text[:300]}"
                )
    return len(scenarios)
