"""A small FHIR R4 REST client for the EHR's server: reads and paged searches, nothing else.

One pooled ``requests.Session`` per process; the bearer token travels per request and never
into a log line or an exception message. Every call is bounded by a per-query timeout and by
the deadline of the whole hook call.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from cds_service import metrics
from cds_service.exact_json import loads_exact

JsonDict = dict[str, Any]
MAX_PAGES = 20
MAX_RESPONSE_BYTES = 20 * 1024 * 1024


class FhirUnavailable(Exception):
    """The FHIR server could not give the data; the message says why in plain words.

    ``reason`` is a short label for metrics (see ``metrics.FETCH_FAILURE_REASONS``).
    """

    def __init__(self, message: str, reason: str = "invalid_response") -> None:
        super().__init__(message)
        self.reason = reason


def make_session(pool_size: int = 16) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # a proxy from the environment must not see patient data
    return session


class FhirClient:
    def __init__(
        self,
        base_url: str,
        access_token: str | None,
        session: requests.Session,
        *,
        timeout_seconds: float,
        deadline: float,  # time.monotonic() value after which nothing more is asked
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._origin = _origin(self.base_url)
        self._headers = {"Accept": "application/fhir+json"}
        if access_token:
            self._headers["Authorization"] = f"Bearer {access_token}"
        self._session = session
        self._timeout = timeout_seconds
        self._deadline = deadline

    def read(self, reference: str) -> JsonDict:
        """GET ``Type/id`` relative to the base URL."""
        url = urljoin(self.base_url, reference)
        if _origin(url) != self._origin:  # the token goes only to the server the EHR named
            raise FhirUnavailable(f"{reference} is not on the FHIR server")
        resource = self._get(url)
        if resource.get("resourceType") == "OperationOutcome":
            raise FhirUnavailable(f"the FHIR server answered an OperationOutcome for {reference}")
        return resource

    def search(self, query: str) -> list[JsonDict]:
        """Run a search and follow its ``next`` links; returns the matching resources."""
        return self._pages(urljoin(self.base_url, query), seen=set())

    def rest_of(self, bundle: JsonDict) -> list[JsonDict]:
        """The resources on the pages after ``bundle`` (a prefetched first page)."""
        url = self._next_link(bundle)
        return self._pages(url, seen=set()) if url else []

    def _pages(self, url: str | None, seen: set[str]) -> list[JsonDict]:
        resources: list[JsonDict] = []
        while url:
            if url in seen:
                raise FhirUnavailable("the FHIR server's paging links go round in a loop")
            if len(seen) >= MAX_PAGES:
                raise FhirUnavailable(f"the search has more than {MAX_PAGES} pages")
            seen.add(url)
            bundle = self._get(url)
            if bundle.get("resourceType") != "Bundle":
                raise FhirUnavailable("the FHIR server did not answer a search with a Bundle")
            resources += bundle_resources(bundle)
            url = self._next_link(bundle)
        return resources

    def _next_link(self, bundle: JsonDict) -> str | None:
        links = bundle.get("link")
        for link in links if isinstance(links, list) else []:
            if isinstance(link, dict) and link.get("relation") == "next":
                url = link.get("url")
                if not isinstance(url, str):
                    return None
                absolute = urljoin(self.base_url, url)
                # The token goes to the server the EHR named, never to another host.
                if _origin(absolute) != self._origin:
                    raise FhirUnavailable("a paging link points away from the FHIR server")
                return absolute
        return None

    def _get(self, url: str) -> JsonDict:
        resource_type = urlsplit(url).path[len(urlsplit(self.base_url).path) :].split("/")[0]
        with metrics.time_fhir_fetch(resource_type):
            try:
                return self._get_json(url)
            except FhirUnavailable as failure:
                metrics.record_fhir_fetch_failure(resource_type, failure.reason)
                raise

    def _get_json(self, url: str) -> JsonDict:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise FhirUnavailable("the time allowed for fetching data ran out", "deadline")
        timeout = min(self._timeout, remaining)
        try:
            response = self._session.get(url, headers=self._headers, timeout=timeout)
        except requests.Timeout:
            raise FhirUnavailable(
                f"the FHIR server did not answer within {timeout:.1f} s", "timeout"
            ) from None
        except requests.RequestException:
            raise FhirUnavailable("the FHIR server could not be reached", "connection") from None
        status = response.status_code
        if status in (401, 403):
            raise FhirUnavailable(
                f"the FHIR server refused the access token (HTTP {status})",
                metrics.fetch_failure_reason(status),
            )
        if status >= 400:
            raise FhirUnavailable(
                f"the FHIR server failed (HTTP {status})", metrics.fetch_failure_reason(status)
            )
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise FhirUnavailable("the FHIR server's answer is too large")
        try:
            document = loads_exact(response.content)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise FhirUnavailable("the FHIR server's answer is not valid JSON") from None
        if not isinstance(document, dict):
            raise FhirUnavailable("the FHIR server's answer is not a FHIR resource")
        return document


def bundle_resources(bundle: JsonDict) -> list[JsonDict]:
    """The match/include resources of a Bundle; search outcome entries are left out."""
    found: list[JsonDict] = []
    for entry in bundle.get("entry") or []:
        if not isinstance(entry, dict):
            continue
        resource = entry.get("resource")
        search = entry.get("search")
        if isinstance(search, dict) and search.get("mode") == "outcome":
            continue
        if isinstance(resource, dict) and resource.get("resourceType") != "OperationOutcome":
            found.append(resource)
    return found


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()
