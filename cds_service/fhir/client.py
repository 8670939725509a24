"""A small FHIR R4 REST client for the EHR's server: reads and paged searches, nothing else.

One pooled ``requests.Session`` per process; the bearer token travels per request and never
into a log line or an exception message. A ``FhirClient`` serves one hook call, and that
call's deadline bounds everything it does:

- each connect and each socket read waits at most until the deadline (and the per-query
  timeout);
- a body is read streamed, the time checked between chunks, so a server that sends a byte now
  and then is cut off at the deadline;
- ``end()`` (called when the hook call is answered) shuts down the sockets of any query still
  in flight, wherever it is blocked, so no fetch thread outlives its call;
- at most ``MAX_CALL_BYTES`` of decoded body are read for the whole call, counted as they
  arrive (a gzip bomb is inflated chunk by chunk and abandoned at the cap);
- it never leaves the ``fhirServer`` origin: not for a reference, a paging link or a redirect.

A query whose connection the server dropped unanswered (a kept-alive connection it closed for
being idle, just as the query went out) is sent once more on a new connection: ``_send``.

What a failure says to the EHR does not map the network (an unreachable host, a refused
connection, an HTTP error and an answer that is not FHIR read alike); the metric labels keep
the detail.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from cds_service import metrics
from cds_service.exact_json import loads_exact
from cds_service.fhir.errors import FhirUnavailable
from cds_service.rules.data_needs import DATA_NEEDS

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
MAX_PAGES = 20
MAX_REDIRECTS = 5
# Decoded body bytes one hook call may read, all its queries together. Years of labs and orders
# are a few MB; a worker runs a few calls at once, and the cap keeps it within its memory.
MAX_CALL_BYTES = 16 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
_ASKED_TYPES = {need.resource_type for need in DATA_NEEDS} | {"Medication"}

# One wording for every answer that is not a usable FHIR answer: unreachable, refused, an HTTP
# error status, a redirect off the origin, a body that is not FHIR JSON or is too large.
NO_USABLE_ANSWER = (
    "the FHIR server at fhirServer gave no usable FHIR answer (check that fhirServer is the "
    "FHIR base URL this service can reach)"
)


class _InFlight:
    """The sockets of one hook call's queries still being answered, so the call can end them.

    A socket is added when its query starts waiting on the server (headers, then body) and
    discarded when the query is done. A query that completes at the very moment its call ends
    may already have handed its connection back to the pool: shutting it down then costs that
    connection (the pool drops a dead connection when it next hands it out), or, if another call
    took it in that instant, one query of that call, which fails like any dropped connection
    (named as unavailable, never used as data). The TLS
    handshake is not covered: it is bounded by the connect timeout per read, as before.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._ended = False

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            if not self._ended:
                self._sockets.add(sock)
                return
        _shut(sock)  # the call is over: this query must not start waiting

    @property
    def ended(self) -> bool:
        with self._lock:
            return self._ended

    def discard(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def end(self) -> None:
        with self._lock:
            self._ended = True
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv, unlike close()


# The _InFlight of the query this thread is running, if any; set by FhirClient._get_json. The
# socket is known only inside urllib3, so its connection class reports it here.
_running = threading.local()


def _watch(sock: socket.socket | None) -> None:
    in_flight: _InFlight | None = getattr(_running, "in_flight", None)
    if sock is not None and in_flight is not None:
        in_flight.add(sock)
        _running.sockets.append(sock)


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _watch(self.sock)  # from here on the thread waits on the server: headers, then body
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:
        _watch(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedTlsPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def make_session(pool_size: int = 16) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {"http": _WatchedPool, "https": _WatchedTlsPool}
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False  # a proxy from the environment must not see patient data
    return session


class FhirClient:
    """The FHIR queries of one hook call. Thread-safe: the call's queries run in parallel."""

    def __init__(
        self,
        base_url: str,
        access_token: str | None,
        session: requests.Session,
        *,
        timeout_seconds: float,
        deadline: float,  # time.monotonic() value after which nothing more is asked
        max_bytes: int = MAX_CALL_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self._origin = _origin(self.base_url)
        self._headers = {"Accept": "application/fhir+json"}
        if access_token:
            self._headers["Authorization"] = f"Bearer {access_token}"
        self._session = session
        self._timeout = timeout_seconds
        self.deadline = deadline
        self._bytes_left = max_bytes
        self._lock = threading.Lock()
        self._in_flight = _InFlight()

    def end(self) -> None:
        """The hook call is answered: end every query still running (they fail at once)."""
        self._in_flight.end()

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
                # The operator's log gets the detailed reason; never the URL (it holds ids), nor
                # a path segment the server chose (a paging link could put anything there).
                kind = resource_type if resource_type in _ASKED_TYPES else "other"
                log.info("FHIR %s query failed: %s", kind, failure.reason)
                raise

    def _get_json(self, url: str) -> JsonDict:
        _running.in_flight, _running.sockets = self._in_flight, []
        try:
            body = self._get_body(url)
        finally:
            for sock in _running.sockets:
                self._in_flight.discard(sock)
            _running.in_flight, _running.sockets = None, []
        try:
            document = loads_exact(bytes(body))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise FhirUnavailable(NO_USABLE_ANSWER, "invalid_response") from None
        if not isinstance(document, dict) or not isinstance(document.get("resourceType"), str):
            raise FhirUnavailable(NO_USABLE_ANSWER, "invalid_response")
        return document

    def _get_body(self, url: str) -> bytearray:
        for _ in range(MAX_REDIRECTS + 1):
            timeout = self._time_left()
            try:
                response = self._send(url, timeout)
            except requests.Timeout as error:
                if isinstance(error, requests.ConnectTimeout):
                    raise FhirUnavailable(NO_USABLE_ANSWER, "connection") from None
                raise self._unfinished(timeout) from None
            except requests.RequestException:
                raise self._stopped_or(NO_USABLE_ANSWER, "connection") from None
            with response:
                if response.is_redirect:
                    target = urljoin(url, response.headers["Location"])
                    if _origin(target) != self._origin:
                        raise FhirUnavailable(NO_USABLE_ANSWER, "redirect")
                    url = target
                    continue
                status = response.status_code
                if status in (401, 403):
                    raise FhirUnavailable(
                        f"the FHIR server refused the access token (HTTP {status})",
                        metrics.fetch_failure_reason(status),
                    )
                if not 200 <= status < 300:
                    raise FhirUnavailable(NO_USABLE_ANSWER, metrics.fetch_failure_reason(status))
                return self._read_streamed(response.raw, timeout)
        raise FhirUnavailable(NO_USABLE_ANSWER, "redirect")

    def _send(self, url: str, timeout: float) -> requests.Response:
        """GET ``url``; sent once more, on a new connection, if its connection was dropped.

        The FHIR server closes a kept-alive connection once it has been idle for its keep-alive
        timeout. urllib3 replaces a pooled connection it finds closed, but one the server closes
        just as the query goes out leaves the query unanswered (closed or reset): 84 of about
        1,000 queries of a ``verify`` run against a Node FHIR server. A GET changes nothing, so
        it is sent again, once, within the time left, on a connection of its own (the pool's
        other idle connections may be just as old). Not after a timeout (the server is slow,
        not gone), nor when the call has ended (``end()`` shut the socket) or its deadline passed.
        """
        options: dict[str, Any] = {
            "headers": self._headers,
            "stream": True,
            "allow_redirects": False,  # followed by _get_body, on the fhirServer origin only
        }
        try:
            return self._session.get(url, timeout=timeout, **options)
        except requests.ConnectionError as error:
            if isinstance(error, (requests.Timeout, requests.exceptions.SSLError)):
                raise
            if self._in_flight.ended:
                raise
        log.debug("a FHIR query's connection was dropped unanswered: sending it once more")
        timeout = min(timeout, self._time_left())
        # Closing the session now closes the connection once the response is read.
        with make_session(pool_size=1) as fresh:
            return fresh.get(url, timeout=timeout, **options)

    def _read_streamed(self, raw: urllib3.BaseHTTPResponse, timeout: float) -> bytearray:
        """The decoded body, chunk by chunk, within the deadline and the call's byte budget."""
        declared = raw.headers.get("Content-Length", "")
        if not raw.headers.get("Content-Encoding") and declared.isdigit():
            with self._lock:
                over = int(declared) > self._bytes_left
            if over:  # said to be too large: not read at all
                raise FhirUnavailable(NO_USABLE_ANSWER, "too_large")
        body = bytearray()
        try:
            while True:
                if time.monotonic() >= self.deadline:
                    raise self._unfinished(timeout)
                chunk = raw.read1(CHUNK_BYTES, decode_content=True)
                if not chunk:
                    return body
                with self._lock:
                    self._bytes_left -= len(chunk)
                    over = self._bytes_left < 0
                if over:
                    raise FhirUnavailable(NO_USABLE_ANSWER, "too_large")
                body += chunk
        except urllib3.exceptions.ReadTimeoutError:
            raise self._unfinished(timeout) from None
        except (urllib3.exceptions.HTTPError, OSError):  # cut off, bad chunking or gzip
            raise self._stopped_or(NO_USABLE_ANSWER, "invalid_response") from None

    def _time_left(self) -> float:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self._unfinished(0.0)
        return min(self._timeout, remaining)

    def _unfinished(self, timeout: float) -> FhirUnavailable:
        if time.monotonic() >= self.deadline:
            return FhirUnavailable("did not finish in the time the call allows", "deadline")
        return FhirUnavailable(f"did not finish within the {timeout:.1f} s allowed", "timeout")

    def _stopped_or(self, message: str, reason: str) -> FhirUnavailable:
        """A query whose socket ``end()`` shut down failed because the call ended."""
        if time.monotonic() >= self.deadline:
            return FhirUnavailable("did not finish in the time the call allows", "deadline")
        return FhirUnavailable(message, reason)


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
    return parts.scheme.lower(), parts.netloc.lower()
