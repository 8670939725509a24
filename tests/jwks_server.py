"""A real JWKS host for tests: http.server in a thread on 127.0.0.1, key set swappable at runtime.

    with JwksServer(jwks_of(jwk_of(key, "k1"))) as server:
        issuer = TrustedIssuer(DEFAULT_ISS, jwks_url=server.url)
        ...
        server.set_jwks(jwks_of(jwk_of(new_key, "k2")))   # key rotation
        assert server.hits() == 2

Every request is recorded (path), so a test can assert a URL was *not* contacted.
``set_status``/``set_body``/``set_delay``/``set_redirect`` simulate a misbehaving host;
``stop()`` takes it down (connections are then refused).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

JWKS_PATH = "/.well-known/jwks.json"


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout test) is expected; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class JwksServer:
    def __init__(self, jwks: dict[str, Any] | None = None, *, path: str = JWKS_PATH) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._jwks: dict[str, Any] = jwks if jwks is not None else {"keys": []}
        self._status = 200
        self._body: bytes | None = None
        self._delay = 0.0
        self._redirect: str | None = None
        self._requests: list[str] = []
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.port: int = self._server.server_address[1]

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> JwksServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Take the host down: afterwards connections to its port are refused."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> JwksServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.url_for(self.path)

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- behaviour ----------------------------------------------------------------------------
    def set_jwks(self, jwks: dict[str, Any]) -> None:
        """Swap the key set served (key rotation)."""
        with self._lock:
            self._jwks = jwks

    def set_status(self, status: int) -> None:
        with self._lock:
            self._status = status

    def set_body(self, body: bytes | None) -> None:
        """Serve these raw bytes instead of the JWKS (None: back to the JWKS)."""
        with self._lock:
            self._body = body

    def set_delay(self, seconds: float) -> None:
        with self._lock:
            self._delay = seconds

    def set_redirect(self, location: str | None) -> None:
        """Answer 302 to ``location`` (None: stop redirecting)."""
        with self._lock:
            self._redirect = location

    # -- what was asked -----------------------------------------------------------------------
    @property
    def requests(self) -> list[str]:
        with self._lock:
            return list(self._requests)

    def hits(self, path: str | None = None) -> int:
        """Requests received in total, or for one path."""
        with self._lock:
            return sum(1 for p in self._requests if path is None or p == path)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner._lock:
                    owner._requests.append(self.path)
                    status, body, delay = owner._status, owner._body, owner._delay
                    redirect, jwks = owner._redirect, owner._jwks
                if delay:
                    time.sleep(delay)
                if self.path != owner.path:
                    status, body = 404, b'{"error": "not found"}'
                elif redirect is not None:
                    self.send_response(302)
                    self.send_header("Location", redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = body if body is not None else json.dumps(jwks).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
