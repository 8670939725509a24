"""SIGTERM stops ``ixazomib-cds serve`` within seconds, also while a FHIR fetch is stuck.

A FHIR server that trickles its answer a byte at a time keeps the service's fetch thread
reading after the hook call has answered (the call's deadline let it go). A worker used to
wait for that thread before exiting, so a SIGTERM took gunicorn's whole graceful timeout
(20 s), after which the master killed the worker. Now a worker that has answered its last
request exits at once; with the nginx front (``--front nginx``), both processes stop.

The trickling server is a small socket server in this file: no real FHIR server can be made
to send one byte per second, and that is the fault.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from live_server import LiveService, start_service
from nginx_server import ensure_nginx

from cds_service.fixtures import Scenario
from reliability.support import worker_pids

DEADLINE = 2.0
PROMPT_SECONDS = 5.0


class TricklingFhirServer:
    """Accepts FHIR requests and answers them a byte every 0.3 s (well inside any read
    timeout), for two minutes."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.stop = threading.Event()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/fhir"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        answer = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\n"
            b"Content-Length: 100000\r\n\r\n" + b" " * 100_000
        )
        with conn:
            for byte in answer[:400]:
                if self.stop.wait(0.3):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture
def fhir() -> Iterator[TricklingFhirServer]:
    server = TricklingFhirServer()
    yield server
    server.close()


def _stuck_call(live: LiveService, scenario: Scenario, fhir: TricklingFhirServer) -> None:
    path = f"/cds-services/{scenario.service}"
    body = json.loads(
        json.dumps(scenario.cds_request(prefetch=False, fhir_server=fhir.base_url), default=str)
    )
    response = requests.post(
        live.base_url + path, json=body, headers=live.headers(path), timeout=30
    )
    # the call itself is bounded by its deadline; the fetch threads are still reading
    assert response.status_code in (200, 412), response.text[:300]
    assert fhir.connections > 0


@pytest.mark.parametrize("front", ["none", "nginx"])
def test_sigterm_is_prompt_while_a_fetch_is_stuck(
    front: str, fhir: TricklingFhirServer, scenarios: dict[str, Scenario]
) -> None:
    if front == "nginx":
        ensure_nginx()
    live = start_service(
        workers=2,
        front=front,
        env={
            "CDS_FHIR_TIMEOUT_SECONDS": "1",
            "CDS_FHIR_DEADLINE_SECONDS": str(DEADLINE),
        },
    )
    try:
        _stuck_call(live, scenarios["hep-moderate"], fhir)
        started = time.monotonic()
        live.process.terminate()
        code = live.process.wait(timeout=30)  # live.stop() below kills it if this times out
        took = time.monotonic() - started
        print(
            f"\nSIGTERM ({front} front) during a stuck fetch: stopped in {took:.1f} s, exit {code}"
        )
        assert took < PROMPT_SECONDS, f"SIGTERM took {took:.1f} s"
        assert code == 0, live.logs()[-2000:]
    finally:
        live.stop()


def _children(pid: int) -> dict[int, str]:
    """pid -> command name of the direct children of ``pid``."""
    found = {}
    for child in worker_pids(pid):
        try:
            found[child] = Path(f"/proc/{child}/comm").read_text().strip()
        except OSError:
            continue
    return found


def test_when_nginx_dies_serve_stops_gunicorn_and_fails() -> None:
    """A front that is gone must not leave a server that answers nothing while looking alive:
    serve stops gunicorn too and exits non-zero, for its supervisor to restart it."""
    ensure_nginx()
    live = start_service(workers=2, front="nginx")
    try:
        children = _children(live.process.pid)
        (nginx,) = [pid for pid, name in children.items() if name.startswith("nginx")]
        (gunicorn,) = [pid for pid in children if pid != nginx]
        os.kill(nginx, signal.SIGKILL)
        code = live.process.wait(timeout=PROMPT_SECONDS + 10)
        assert code != 0
        assert not Path(f"/proc/{gunicorn}").exists() or _is_zombie(gunicorn)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{live.base_url}/healthz", timeout=2)
    finally:
        live.stop()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
