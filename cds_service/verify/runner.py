"""``ixazomib-cds verify``: the bundled scenarios against a FHIR server and a service.

For each scenario: load its resources into the FHIR server (ids of the run's own, see
``isolation``), then call the service twice, as an EHR would:

- ``prefetch``: the service's discovery templates, filled in from the context and run against
  the FHIR server, their answers sent as prefetch (with ``fhirServer``, as EHRs send both);
- ``fetch``: no prefetch at all, so the service reads everything from ``fhirServer`` itself.

Each answer's recommendations are compared with the scenario's expected ones by the same check
the test suite uses (``checks.check``). The service is the deployed one at ``--service``
(optionally with a signed CDS Hooks JWT per call) or one built in this process by the app
factory.
"""

from __future__ import annotations

import re
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from cds_service.config import Config
from cds_service.fixtures import (
    ExpectedRecommendation,
    JsonDict,
    Scenario,
    ScenarioError,
    load_scenarios,
    recommendations,
)
from cds_service.verify.checks import check
from cds_service.verify.isolation import Run, isolate

PATH_PREFETCH = "prefetch"
PATH_FETCH = "fetch"
PATHS = (PATH_PREFETCH, PATH_FETCH)
# The settings that let the service fetch from a FHIR server without an access token (a public
# sandbox often has none) and send a token over plain http. Config.from_env ignores variables
# it does not know, so naming them here is harmless on a build without them.
OPEN_FHIR_SERVERS_SETTING = "CDS_ALLOW_OPEN_FHIR_SERVERS"
PLAIN_HTTP_FHIR_SETTING = "CDS_ALLOW_PLAIN_HTTP_FHIR"
_CONTEXT_TOKEN = re.compile(r"\{\{\s*context\.(\w+)\s*\}\}")
JWT_LIFETIME_SECONDS = 300


@dataclass
class Outcome:
    """One scenario on one path: passed, failed (with the problems) or skipped (with why)."""

    scenario: str
    path: str
    expected: str
    got: str = ""
    passed: bool | None = None  # None: skipped
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return "skip" if self.passed is None else "pass" if self.passed else "FAIL"


class Service(Protocol):
    """A CDS service to call: its discovery document and its hook endpoints."""

    def discovery(self) -> JsonDict: ...

    def call(self, service_id: str, body: JsonDict) -> tuple[int, Any]: ...


class RemoteService:
    """The deployed service at ``base_url``; with a signer, each call carries a fresh JWT."""

    def __init__(
        self,
        base_url: str,
        signer: Callable[[str], str] | None = None,
        timeout_seconds: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._signer = signer
        self._timeout = timeout_seconds
        self._session = requests.Session()

    def _headers(self, url: str) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._signer is not None:
            headers["Authorization"] = f"Bearer {self._signer(url)}"
        return headers

    def discovery(self) -> JsonDict:
        url = f"{self.base_url}/cds-services"
        response = self._session.get(url, headers=self._headers(url), timeout=self._timeout)
        if response.status_code != 200:
            raise VerifyError(f"GET {url}: HTTP {response.status_code}: {response.text[:300]}")
        return _json_object(response, url)

    def call(self, service_id: str, body: JsonDict) -> tuple[int, Any]:
        url = f"{self.base_url}/cds-services/{service_id}"
        response = self._session.post(
            url, json=body, headers=self._headers(url), timeout=self._timeout
        )
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text[:500]


class InProcessService:
    """The service built here by the app factory (authentication off, its own SQLite file)."""

    def __init__(self, config: Config) -> None:
        from cds_service.app import create_app  # Flask only when this path is taken

        self._client = create_app(config, in_process=True).test_client()

    def discovery(self) -> JsonDict:
        found: JsonDict = self._client.get("/cds-services").get_json()
        return found

    def call(self, service_id: str, body: JsonDict) -> tuple[int, Any]:
        response = self._client.post(f"/cds-services/{service_id}", json=body)
        answer = response.get_json(silent=True)
        return response.status_code, answer if answer is not None else response.get_data(
            as_text=True
        )[:500]


def in_process_config(fhir_server: str, fhir_token: str | None) -> Config:
    """The in-process service's settings: no authentication (nobody else calls it), a
    throwaway database, FHIR timeouts fit for a slow public sandbox; without a token,
    permission to read the FHIR server without one; for a plain-http server, permission to
    send the token there (this command already sends it there to load the scenarios)."""
    database = Path(tempfile.mkdtemp(prefix="ixazomib-cds-verify-")) / "verify.sqlite3"
    environ = {
        "CDS_AUTH": "disabled",
        "CDS_DATABASE_URL": f"sqlite:///{database}",
        "CDS_FHIR_TIMEOUT_SECONDS": "20",
        "CDS_FHIR_DEADLINE_SECONDS": "60",
        "CDS_LOG_LEVEL": "ERROR",
    }
    if not fhir_token:
        environ[OPEN_FHIR_SERVERS_SETTING] = "true"
    elif urlsplit(fhir_server).scheme == "http":
        environ[PLAIN_HTTP_FHIR_SETTING] = "true"
    return Config.from_env(environ)


class VerifyError(RuntimeError):
    """The run cannot go on (FHIR server or service unreachable, unknown scenario)."""


class FhirServer:
    """The FHIR server the scenarios are loaded into, as the EHR's server."""

    def __init__(self, base_url: str, token: str | None, timeout_seconds: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = requests.Session()
        # A shared sandbox drops idle keep-alive connections and resets under load: the run's
        # own reads (prefetch, metadata) are retried, so that what fails is the service's.
        reads = Retry(total=3, status=0, backoff_factor=0.2, allowed_methods={"GET"})
        self._session.mount("http://", HTTPAdapter(max_retries=reads))
        self._session.mount("https://", HTTPAdapter(max_retries=reads))
        self._session.headers["Accept"] = "application/fhir+json"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout_seconds

    def transaction(self, bundle: JsonDict) -> None:
        response = self._session.post(
            self.base_url,
            json=bundle,
            headers={"Content-Type": "application/fhir+json"},
            timeout=self._timeout,
        )
        if response.status_code >= 300:
            raise VerifyError(
                f"the FHIR server refused the transaction (HTTP {response.status_code}): "
                f"{response.text[:300]}"
            )

    def check_reachable(self) -> None:
        try:
            response = self.get("metadata")
        except requests.RequestException as error:
            raise VerifyError(
                f"the FHIR server {self.base_url} cannot be reached: {error}"
            ) from None
        if response.status_code != 200:
            raise VerifyError(
                f"the FHIR server {self.base_url} answers GET metadata with HTTP "
                f"{response.status_code}"
            )

    def get(self, query: str) -> requests.Response:
        url = query if query.startswith("http") else f"{self.base_url}/{query.lstrip('/')}"
        return self._session.get(url, timeout=self._timeout)


@dataclass
class VerifyOptions:
    fhir_server: str
    service: str | None = None
    fhir_token: str | None = None
    signer: Callable[[str], str] | None = None
    scenario_ids: Sequence[str] = ()
    scenario_dir: str | None = None
    cleanup: bool = False


@dataclass
class VerifyResult:
    run: Run
    outcomes: list[Outcome]
    loaded: int = 0
    deleted: int = 0

    @property
    def passed(self) -> bool:
        ran = [o for o in self.outcomes if o.passed is not None]
        return bool(ran) and all(o.passed for o in ran)


def select_scenarios(options: VerifyOptions) -> list[Scenario]:
    try:
        scenarios = load_scenarios(options.scenario_dir)
    except ScenarioError as error:
        raise VerifyError(str(error)) from None
    if not options.scenario_ids:
        return scenarios
    by_id = {s.id: s for s in scenarios}
    unknown = [i for i in options.scenario_ids if i not in by_id]
    if unknown:
        raise VerifyError(f"no such scenario: {', '.join(unknown)}")
    return [by_id[i] for i in dict.fromkeys(options.scenario_ids)]


def verify(
    options: VerifyOptions, progress: Callable[[Outcome], None] | None = None
) -> VerifyResult:
    """Load, call, compare; with ``cleanup`` delete what was loaded, whatever happened."""
    scenarios = select_scenarios(options)
    fhir = FhirServer(options.fhir_server, options.fhir_token)
    fhir.check_reachable()
    service: Service
    if options.service:
        service = RemoteService(options.service, options.signer)
    else:
        service = InProcessService(in_process_config(options.fhir_server, options.fhir_token))
    try:
        templates = _templates(service.discovery())
    except requests.RequestException as error:
        raise VerifyError(f"the service cannot be reached: {error}") from None
    result = VerifyResult(Run.new(), [])
    loaded: list[Scenario] = []
    try:
        for original in scenarios:
            scenario = isolate(original, result.run)
            for outcome in _verify_one(scenario, fhir, service, templates, options, loaded):
                result.outcomes.append(outcome)
                if progress is not None:
                    progress(outcome)
    finally:
        result.loaded = sum(len(s.resources) for s in loaded)
        if options.cleanup:
            result.deleted = _delete(fhir, loaded)
    return result


def _verify_one(
    scenario: Scenario,
    fhir: FhirServer,
    service: Service,
    templates: dict[str, dict[str, str]],
    options: VerifyOptions,
    loaded: list[Scenario],
) -> list[Outcome]:
    expected = describe_expected(scenario)
    if scenario.prefetch_failures:
        why = "its EHR's prefetch and FHIR server fail on purpose; a real server cannot"
        return [Outcome(scenario.id, path, expected, problems=[why]) for path in PATHS]
    try:
        fhir.transaction(scenario.transaction_bundle())
    except (VerifyError, requests.RequestException) as error:
        problem = f"loading into the FHIR server: {error}"
        return [Outcome(scenario.id, p, expected, passed=False, problems=[problem]) for p in PATHS]
    loaded.append(scenario)
    outcomes = []
    for path in PATHS:
        if path == PATH_FETCH and not scenario.send_fhir_server:
            why = "its client sends no fhirServer, so there is nothing to fetch from"
            outcomes.append(Outcome(scenario.id, path, expected, problems=[why]))
            continue
        started = time.monotonic()
        outcome = _call(scenario, path, fhir, service, templates, options.fhir_token, expected)
        outcome.seconds = time.monotonic() - started
        outcomes.append(outcome)
    return outcomes


def _call(
    scenario: Scenario,
    path: str,
    fhir: FhirServer,
    service: Service,
    templates: dict[str, dict[str, str]],
    fhir_token: str | None,
    expected: str,
) -> Outcome:
    outcome = Outcome(scenario.id, path, expected)
    request = hook_request(scenario, fhir.base_url, fhir_token)
    try:
        if path == PATH_PREFETCH:
            request["prefetch"] = ehr_prefetch(scenario, templates.get(scenario.service, {}), fhir)
            if not scenario.send_fhir_server:
                request.pop("fhirServer", None)
                request.pop("fhirAuthorization", None)
        status, body = service.call(scenario.service, request)
    except (requests.RequestException, VerifyError) as error:
        outcome.passed = False
        outcome.problems = [f"{type(error).__name__}: {error}"]
        return outcome
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("cards"), list):
        outcome.passed = False
        outcome.got = f"HTTP {status}"
        outcome.problems = [f"HTTP {status}: {str(body)[:300]}"]
        return outcome
    outcome.got = describe_recommendations(recommendations(body)) or "(no recommendation)"
    outcome.problems = check(scenario, body)
    outcome.passed = not outcome.problems
    return outcome


def hook_request(scenario: Scenario, fhir_server: str, fhir_token: str | None) -> JsonDict:
    """The scenario's CDS Hooks call naming the FHIR server (and its token, when there is
    one: a sandbox without authorization gets no made-up one)."""
    request = scenario.cds_request(prefetch=False, fhir_server=fhir_server)
    request["hookInstance"] = str(uuid.uuid4())
    if fhir_token:
        request["fhirAuthorization"]["access_token"] = fhir_token
    else:
        request.pop("fhirAuthorization", None)
    return request


def ehr_prefetch(scenario: Scenario, templates: dict[str, str], fhir: FhirServer) -> JsonDict:
    """What an EHR sends: each template filled in from the context and run on its server.

    A search's Bundle is sent as the server answered it (the service follows its ``next``
    link); a read that finds nothing is ``null``; a failed query is left out, so that the
    service fetches it itself (CDS Hooks 2.0: an absent key was not fulfilled).
    """
    prefetch: JsonDict = {}
    for key, template in templates.items():
        query = _CONTEXT_TOKEN.sub(lambda m: str(scenario.context.get(m.group(1), "")), template)
        response = fhir.get(query)
        if response.status_code == 200:
            prefetch[key] = response.json()
        elif response.status_code in (404, 410) and "?" not in query:
            prefetch[key] = None
    return prefetch


def _templates(discovery: JsonDict) -> dict[str, dict[str, str]]:
    services = discovery.get("services")
    if not isinstance(services, list):
        raise VerifyError("the service's discovery document lists no services")
    return {
        str(s.get("id")): dict(s.get("prefetch") or {}) for s in services if isinstance(s, dict)
    }


def _delete(fhir: FhirServer, scenarios: list[Scenario]) -> int:
    """Delete every resource the run loaded (a batch of DELETEs per scenario)."""
    deleted = 0
    for scenario in scenarios:
        references = [f"{r['resourceType']}/{r['id']}" for r in scenario.resources]
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "DELETE", "url": ref}} for ref in references],
        }
        try:
            fhir.transaction(bundle)
        except (VerifyError, requests.RequestException):
            continue  # counted as not deleted; the run's tag still finds them
        deleted += len(references)
    return deleted


# -------------------------------------------------------------------------- descriptions


def describe_expected(scenario: Scenario) -> str:
    parts = [_expectation(e) for e in scenario.expected]
    return "; ".join(parts) or "(no restrictive recommendation)"


def _expectation(expected: ExpectedRecommendation) -> str:
    text = "|".join(expected.rules)
    if expected.ixazomib_actions:
        text += " ixazomib " + "|".join(expected.ixazomib_actions)
        if expected.ixazomib_dose_mg is not None:
            text += f" {expected.ixazomib_dose_mg} mg"
    if expected.lenalidomide_action is not None:
        text += f", lenalidomide {expected.lenalidomide_action}"
        if expected.lenalidomide_dose_mg is not None:
            text += f" {expected.lenalidomide_dose_mg} mg"
    return text


def describe_recommendations(found: list[JsonDict]) -> str:
    parts = []
    for recommendation in found:
        text = str(recommendation.get("rule"))
        ixazomib = recommendation.get("ixazomib") or {}
        if ixazomib.get("action"):
            text += f" ixazomib {ixazomib['action']}"
            if ixazomib.get("doseMg") is not None:
                text += f" {ixazomib['doseMg']} mg"
        lenalidomide = recommendation.get("lenalidomide") or {}
        if lenalidomide.get("action"):
            text += f", lenalidomide {lenalidomide['action']}"
            if lenalidomide.get("doseMg") is not None:
                text += f" {lenalidomide['doseMg']} mg"
        parts.append(text)
    return "; ".join(parts)


def _json_object(response: requests.Response, url: str) -> JsonDict:
    try:
        body = response.json()
    except ValueError:
        raise VerifyError(f"GET {url}: not JSON") from None
    if not isinstance(body, dict):
        raise VerifyError(f"GET {url}: not a JSON object")
    return body
