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
a Bundle belongs and vice versa); ``error_404``; ``not_fhir`` (a 200 HTML page).

Hostile bodies: ``gzip_bomb`` (about 1 MB of gzip that inflates to 1 GiB), ``endless_chunked``
(a chunked body that never ends), ``huge`` (a 50 MB body with its Content-Length);
``trickle`` (headers at once, then a byte of body every ``trickle_interval`` seconds) and
``trickle_headers`` (the status line itself a byte at a time).

``serial``: one request at a time, each search taking ``serial_delay`` seconds (reads are
quick), the latest-arrived request served next: a busy single-threaded server, in the order
worst for whoever asked first. ``redirect``: every request is answered 302 to the same path
under ``redirect_to`` (another server's base URL, or ``moved_base_url`` on this one, which
is answered normally).

Dropped connections: ``drop`` closes the connection of every request without answering it,
``drop_once`` only that of the next request (the ones after it are answered normally);
with ``drop_with_reset`` the connection is reset (RST) instead of closed. A real server does
this only by a race: it closes a kept-alive connection for being idle just as the client
sends a request on it.

``set_other_patient(scenario)``: searches also answer that scenario's matching resources
(another patient's), the way a FHIR server that ignores the patient parameter would; a Patient
read answers that patient when asked to. ``page_size``: searches answer in pages of that many
entries, linked by ``next``.

"Connection refused" is ``closed_port_url()`` or a server that was stopped. Every request is
recorded (path and query, Authorization header) so a test can check what the service asked
for and with which token; ``open_requests`` counts those still being answered.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from cds_service.fixtures import Scenario

BASE_PATH = "/fhir"
MOVED_PATH = "/moved/fhir"  # where a same-origin redirect leads; answered like BASE_PATH


class Mode(StrEnum):
    HEALTHY = "healthy"
    SLOW = "slow"
    ERROR_500 = "error_500"
    INVALID_JSON = "invalid_json"
    UNAUTHORIZED = "unauthorized"
    LOOP = "loop"
    ENDLESS_PAGES = "endless_pages"
    WRONG_TYPE = "wrong_type"
    ERROR_404 = "error_404"
    NOT_FHIR = "not_fhir"
    GZIP_BOMB = "gzip_bomb"
    ENDLESS_CHUNKED = "endless_chunked"
    HUGE = "huge"
    TRICKLE = "trickle"
    TRICKLE_HEADERS = "trickle_headers"
    SERIAL = "serial"
    REDIRECT = "redirect"
    DROP = "drop"
    DROP_ONCE = "drop_once"


BOMB_INFLATED_BYTES = 1024**3
HUGE_BYTES = 50 * 1000 * 1000
_BUNDLE_START = b'{"resourceType": "Bundle", "type": "searchset", "entry": ['


@cache
def gzip_bomb() -> bytes:
    """A gzip body that inflates to 1 GiB: a Bundle's first bytes, then spaces (made once)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip format
    parts = [packer.compress(_BUNDLE_START)]
    block = b" " * (1024 * 1024)
    parts += [packer.compress(block) for _ in range(BOMB_INFLATED_BYTES // len(block))]
    parts.append(packer.flush())
    return b"".join(parts)


@cache
def huge_body() -> bytes:
    """A valid 50 MB Bundle (one long string), made once."""
    head = _BUNDLE_START + b'], "padding": "'
    return head + b"x" * (HUGE_BYTES - len(head) - 2) + b'"}'


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
    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        delay: float = 10.0,
        trickle_interval: float = 0.3,
        serial_delay: float = 0.9,
    ) -> None:
        self.scenario = scenario
        self.delay = delay
        self.trickle_interval = trickle_interval
        self.serial_delay = serial_delay
        self.redirect_to: str | None = None
        self.page_size: int | None = None
        self.drop_with_reset = False
        self._drop_pending = False
        self._other_patient: Scenario | None = None
        self._other_patient_reads = False
        self._open = 0
        self._serial = threading.Condition()
        self._serial_busy = False
        self._serial_waiting: list[object] = []
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

    @property
    def moved_base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{MOVED_PATH}"

    # -- behaviour ------------------------------------------------------------------------
    def set_mode(self, mode: Mode, only: Iterable[str] | None = None) -> None:
        """Misbehave in ``mode`` for every request, or only for these resource types."""
        if mode is Mode.GZIP_BOMB:
            gzip_bomb()  # made before the first request, not while the service waits
        if mode is Mode.HUGE:
            huge_body()
        with self._lock:
            self._mode = mode
            self._only = frozenset(only) if only is not None else None
            self._drop_pending = mode is Mode.DROP_ONCE

    def set_scenario(self, scenario: Scenario | None) -> None:
        with self._lock:
            self.scenario = scenario

    def set_other_patient(self, scenario: Scenario | None, *, reads: bool = False) -> None:
        """Mix ``scenario``'s patient's resources into every search answer (None: stop); with
        ``reads``, a Patient read answers that patient."""
        with self._lock:
            self._other_patient = scenario
            self._other_patient_reads = reads

    # -- what was asked -------------------------------------------------------------------
    @property
    def requests(self) -> list[tuple[str, str | None]]:
        """(path with query, Authorization header) of every request received."""
        with self._lock:
            return list(self._requests)

    def reset_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    @property
    def open_requests(self) -> int:
        """Requests whose handler is still running (a client still reading, or queued)."""
        with self._lock:
            return self._open

    @contextmanager
    def _one_at_a_time(self) -> Iterator[None]:
        """Serve one request at a time, the latest-arrived first (a LIFO queue)."""
        me = object()
        with self._serial:
            self._serial_waiting.append(me)
            while self._serial_busy or self._serial_waiting[-1] is not me:
                self._serial.wait()
            self._serial_waiting.remove(me)
            self._serial_busy = True
        try:
            yield
        finally:
            with self._serial:
                self._serial_busy = False
                self._serial.notify_all()

    # -- the handler ----------------------------------------------------------------------
    def _mode_for(self, target: str) -> Mode:
        parts = urlsplit(target)
        if parts.path.startswith(MOVED_PATH):
            return Mode.HEALTHY  # the end of a same-origin redirect
        relative = parts.path[len(BASE_PATH) :].strip("/")
        with self._lock:
            mode, only = self._mode, self._only
        if only is not None and relative.split("/")[0] not in only:
            return Mode.HEALTHY
        return mode

    def _drops(self, mode: Mode) -> bool:
        """Whether this request's connection is dropped; ``drop_once`` drops only the first."""
        if mode is Mode.DROP:
            return True
        with self._lock:
            dropped, self._drop_pending = self._drop_pending, False
        return dropped

    def _answer(self, target: str) -> tuple[int, bytes]:
        parts = urlsplit(target)
        base = MOVED_PATH if parts.path.startswith(MOVED_PATH) else BASE_PATH
        relative = (
            parts.path[len(base) :].strip("/")
            if parts.path.startswith(base)
            else parts.path.strip("/")
        )
        mode = self._mode_for(target)
        with self._lock:
            scenario, other = self.scenario, self._other_patient
            other_reads = self._other_patient_reads
        is_search = "/" not in relative
        query = relative + (f"?{parts.query}" if parts.query else "")
        if mode is Mode.ERROR_404:
            return 404, _dumps(_outcome("not-found", f"{relative} is not here"))
        if mode is Mode.NOT_FHIR:
            return 200, b"<html><body>It works!</body></html>"
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
            return 200, _dumps(self._search(scenario, other, relative, parts.query))
        if other is not None and other_reads and relative.startswith("Patient/"):
            return 200, _dumps(other.read(f"Patient/{other.patient_id}") or {})
        resource = scenario.read(relative)
        if resource is None:
            return 404, _dumps(_outcome("not-found", f"{relative} is not here"))
        return 200, _dumps(resource)

    def _search(
        self, scenario: Scenario, other: Scenario | None, resource_type: str, query: str
    ) -> dict[str, Any]:
        params = [(k, v) for k, v in parse_qsl(query) if k != "_offset"]
        offset = int(dict(parse_qsl(query)).get("_offset", "0"))
        search = f"{resource_type}?{urlencode(params)}"
        entries = scenario.search(search, self.base_url)["entry"]
        if other is not None:  # the same query, answered about another patient too
            theirs = [
                (k, other.patient_id if k in ("patient", "subject") else v) for k, v in params
            ]
            theirs = [(k, f"Patient/{v}" if k == "subject" else v) for k, v in theirs]
            entries += other.search(f"{resource_type}?{urlencode(theirs)}", self.base_url)["entry"]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
        if self.page_size is not None:
            bundle["entry"] = entries[offset : offset + self.page_size]
            if offset + self.page_size < len(entries):
                next_query = urlencode([*params, ("_offset", str(offset + self.page_size))])
                bundle["link"] = [
                    {"relation": "next", "url": f"{self.base_url}/{resource_type}?{next_query}"}
                ]
        return bundle

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with owner._lock:
                    owner._requests.append((self.path, self.headers.get("Authorization")))
                    owner._open += 1
                try:
                    self._reply(owner._mode_for(self.path))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the service gave up waiting: that is the point of SLOW and the rest
                finally:
                    with owner._lock:
                        owner._open -= 1

            def _reply(self, mode: Mode) -> None:
                if mode in (Mode.DROP, Mode.DROP_ONCE) and owner._drops(mode):
                    self.close_connection = True  # no answer: the connection is closed
                    if owner.drop_with_reset:  # close() with a zero linger time sends RST
                        self.connection.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        self.connection.close()
                    return
                if mode is Mode.TRICKLE_HEADERS:
                    self.close_connection = True
                    for byte in b"HTTP/1.1 200 OK\r\n" * 1000:
                        if owner._stopping.wait(owner.trickle_interval):
                            return
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    return
                if mode is Mode.SERIAL:
                    with owner._one_at_a_time():
                        if "/" not in self.path.split("?")[0][len(BASE_PATH) + 1 :]:
                            owner._stopping.wait(owner.serial_delay)  # a search
                        self._send(*owner._answer(self.path))
                    return
                if mode is Mode.REDIRECT:
                    self.send_response(302)
                    self.send_header(
                        "Location", f"{owner.redirect_to}{self.path[len(BASE_PATH) :]}"
                    )
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if mode is Mode.GZIP_BOMB:
                    self._send(200, gzip_bomb(), {"Content-Encoding": "gzip"})
                    return
                if mode is Mode.HUGE:
                    self._send(200, huge_body())
                    return
                if mode is Mode.ENDLESS_CHUNKED:
                    self.close_connection = True
                    self.send_response(200)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    chunk = b'{"resource": {"resourceType": "Observation"}},' * 1000
                    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                    while not owner._stopping.is_set():
                        self.wfile.write(frame)
                    return
                if mode is Mode.TRICKLE:
                    self.close_connection = True
                    self.send_response(200)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", "1000000")
                    self.end_headers()
                    self.wfile.flush()
                    while not owner._stopping.wait(owner.trickle_interval):
                        self.wfile.write(b" ")
                        self.wfile.flush()
                    return
                self._send(*owner._answer(self.path))

            def _send(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

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
