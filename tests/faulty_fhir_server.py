"""A real local FHIR server that misbehaves on command (http.server in a thread, 127.0.0.1 only).

It answers reads and searches from a :class:`cds_service.fixtures.Scenario` (the patient's
record) when healthy, and fails the way real FHIR servers fail when told to::

    with FaultyFhirServer(scenario) as fhir:
        fhir.set_mode(Mode.SLOW)                          # every request
        fhir.set_mode(Mode.ERROR_500, only={"Observation"})  # only these resource types
        request = scenario.cds_request(prefetch=False, fhir_server=fhir.base_url)

Modes (``Mode``): ``healthy``; ``slow`` (answers after ``delay`` seconds, longer than any
timeout the tests configure); ``error_500``; ``invalid_json``; ``unauthorized`` (401);
``loop`` (searches answer a Bundle whose ``next`` link points back at itself);
``endless_pages`` (every page links to a new page); ``wrong_type`` (answers a Patient where
a Bundle belongs and vice versa). "Connection refused" is ``closed_port_url()`` or a server
that was stopped. Every request is recorded (path and query, Authorization header) so a test
can check what the service asked for and with which token.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterable
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from cds_service.fixtures import Scenario

BASE_PATH = "/fhir"


class Mode(StrEnum):
    HEALTHY = "healthy"
    SLOW = "slow"
    ERROR_500 = "error_500"
    INVALID_JSON = "invalid_json"
    UNAUTHORIZED = "unauthorized"
    LOOP = "loop"
    ENDLESS_PAGES = "endless_pages"
    WRONG_TYPE = "wrong_type"


def closed_port_url() -> str:
    """A FHIR base URL on a loopback port nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{BASE_PATH}"


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # The service opens a connection per query, ~10 at once per hook call. With socketserver's
    # backlog of 5, a burst that the accept loop (a thread of the busy test process) has not
    # taken yet overflows it, and the dropped SYN is resent only after 1 s: exactly the
    # service's timeout, so a fault test would see a timeout instead of the fault it set up.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (the service's timeout) is expected; anything else is shown."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultyFhirServer:
    def __init__(self, scenario: Scenario | None = None, *, delay: float = 10.0) -> None:
        self.scenario = scenario
        self.delay = delay
        self._lock = threading.Lock()
        self._mode = Mode.HEALTHY
        self._only: frozenset[str] | None = None
        self._requests: list[tuple[str, str | None]] = []
        self._stopping = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._thread: threading.Thread | None = None
        self.port: int = self._server.server_address[1]

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> FaultyFhirServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take the server down (slow handlers wake up at once); the port then refuses."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FaultyFhirServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_PATH}"

    # -- behaviour ------------------------------------------------------------------------
    def set_mode(self, mode: Mode, only: Iterable[str] | None = None) -> None:
        """Misbehave in ``mode`` for every request, or only for these resource types."""
        with self._lock:
            self._mode = mode
            self._only = frozenset(only) if only is not None else None

    def set_scenario(self, scenario: Scenario | None) -> None:
        with self._lock:
            self.scenario = scenario

    # -- what was asked -------------------------------------------------------------------
    @property
    def requests(self) -> list[tuple[str, str | None]]:
        """(path with query, Authorization header) of every request received."""
        with self._lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- the handler ----------------------------------------------------------------------
    def _answer(self, target: str) -> tuple[int, bytes]:
        parts = urlsplit(target)
        relative = (
            parts.path[len(BASE_PATH) :].strip("/")
            if parts.path.startswith(BASE_PATH)
            else parts.path.strip("/")
        )
        resource_type = relative.split("/")[0]
        with self._lock:
            mode, only, scenario = self._mode, self._only, self.scenario
        if only is not None and resource_type not in only:
            mode = Mode.HEALTHY
        is_search = "/" not in relative
        query = relative + (f"?{parts.query}" if parts.query else "")
        if mode is Mode.SLOW:
            self._stopping.wait(self.delay)
            mode = Mode.HEALTHY
        if mode is Mode.ERROR_500:
            return 500, _dumps(_outcome("exception", "internal server error"))
        if mode is Mode.INVALID_JSON:
            return 200, b'{"resourceType": "Bundle", "entry": [ {"resource": '
        if mode is Mode.UNAUTHORIZED:
            return 401, _dumps(_outcome("login", "the access token is not valid"))
        if mode is Mode.LOOP and is_search:
            return 200, _dumps(_bundle([], next_url=f"{self.base_url}/{query}"))
        if mode is Mode.ENDLESS_PAGES and is_search:
            page = int(
                dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("_page", "0")
            )
            return 200, _dumps(_bundle([], next_url=f"{self.base_url}/{relative}?_page={page + 1}"))
        if mode is Mode.WRONG_TYPE:
            if is_search:
                return 200, _dumps({"resourceType": "Patient", "id": "someone-else"})
            return 200, _dumps(_bundle([]))
        if scenario is None:
            if is_search:
                return 200, _dumps(_bundle([]))
            return 404, _dumps(_outcome("not-found", f"{relative} is not here"))
        if is_search:
            return 200, _dumps(scenario.search(query, self.base_url))
        resource = scenario.read(relative)
        if resource is None:
            return 404, _dumps(_outcome("not-found", f"{relative} is not here"))
        return 200, _dumps(resource)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with owner._lock:
                    owner._requests.append((self.path, self.headers.get("Authorization")))
                status, body = owner._answer(self.path)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the service gave up waiting: that is the point of SLOW

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, default=str).encode()


def _bundle(resources: list[dict[str, Any]], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if next_url is not None:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def _outcome(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
